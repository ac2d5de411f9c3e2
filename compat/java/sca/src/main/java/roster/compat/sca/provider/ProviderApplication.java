package roster.compat.sca.provider;

import com.alibaba.cloud.nacos.registry.NacosRegistration;
import com.alibaba.cloud.nacos.registry.NacosServiceRegistry;
import java.io.IOException;
import org.springframework.beans.factory.ObjectProvider;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RestController;

/**
 * The provider: a web application that Spring Cloud Alibaba registers in Nacos once its web
 * server is up (NacosAutoServiceRegistration → NacosServiceRegistry.register), kept by the
 * client's gRPC connection. The consumer starts it with its settings as arguments.
 *
 * <p>Started with spring.cloud.nacos.discovery.register-enabled=false, it waits for a
 * {@code POST /register} to register itself through the same NacosServiceRegistry (the
 * consumer's X: registered during the subscription step by a JVM that was started earlier).
 */
@SpringBootApplication
@RestController
public class ProviderApplication {
    @Value("${spring.application.name}")
    private String name;

    private final ObjectProvider<NacosServiceRegistry> registry;
    private final ObjectProvider<NacosRegistration> registration;

    public ProviderApplication(ObjectProvider<NacosServiceRegistry> registry, ObjectProvider<NacosRegistration> registration) {
        this.registry = registry;
        this.registration = registration;
    }

    @PostMapping("/register")
    public String register() {
        NacosRegistration r = registration.getObject();
        registry.getObject().register(r);
        return "registered " + r.getServiceId() + " " + r.getHost() + ":" + r.getPort();
    }

    @GetMapping("/hello")
    public String hello() {
        return "hello from " + name + " (provider pid " + ProcessHandle.current().pid() + ")";
    }

    public static void main(String[] args) {
        watchParent();
        SpringApplication.run(ProviderApplication.class, args);
    }

    /**
     * stdin is a pipe from the consumer that starts this JVM: its end means the consumer is
     * gone, and the provider goes too, at once and without deregistering, as under SIGKILL.
     */
    private static void watchParent() {
        Thread t = new Thread(() -> {
            try {
                while (System.in.read() >= 0) {
                    // The consumer writes nothing.
                }
            } catch (IOException ignored) {
                // Same as end of input.
            }
            System.err.println("provider: the consumer is gone; halting");
            Runtime.getRuntime().halt(0);
        }, "parent-watch");
        t.setDaemon(true);
        t.start();
    }
}
