package roster.compat.sca.provider;

import java.io.IOException;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.RestController;

/**
 * The provider: a web application that Spring Cloud Alibaba registers in Nacos once its web
 * server is up (NacosAutoServiceRegistration → NacosServiceRegistry.register), kept by the
 * client's gRPC connection. The consumer starts it with its settings as arguments.
 */
@SpringBootApplication
@RestController
public class ProviderApplication {
    @Value("${spring.application.name}")
    private String name;

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
