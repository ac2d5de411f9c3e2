package roster.compat.dubbo;

import com.alibaba.nacos.api.naming.NamingFactory;
import com.alibaba.nacos.api.naming.NamingService;
import com.alibaba.nacos.api.naming.pojo.Instance;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.dubbo.common.Version;
import org.apache.dubbo.config.ApplicationConfig;
import org.apache.dubbo.config.ProtocolConfig;
import org.apache.dubbo.config.ReferenceConfig;
import org.apache.dubbo.config.RegistryConfig;
import org.apache.dubbo.config.ServiceConfig;
import org.apache.dubbo.config.bootstrap.DubboBootstrap;
import org.apache.dubbo.rpc.model.FrameworkModel;
import roster.compat.Contract;

/**
 * The Apache Dubbo row of the compatibility matrix: a Dubbo provider and a Dubbo consumer
 * (each its own framework model, as two applications would be) that find each other
 * through Roster with Dubbo's Nacos registry, and one RPC between them.
 *
 * <p>Nacos is used as a naming registry only, the way Dubbo documents it for that
 * ({@code use-as-config-center=false}, {@code use-as-metadata-center=false}): the consumer
 * reads the provider's metadata from the provider itself (metadata-type local), and names
 * the provider application with {@code providedBy} instead of a mapping in a metadata
 * centre. The provider registers its application instance (register-mode instance), so
 * E is the provider's own address, a loopback one (127.0.0.1, or wherever in 127.0.0.0/8
 * the host's name resolves, such as 127.0.1.1) and its Dubbo port: the consumer connects
 * to what is registered, so it is started only once E is seen on loopback, and nothing
 * here may connect to 10.9.0.1. The program tells the driver the address E has.
 */
public final class Main {
    private final Contract c;
    private final int ePort;
    private DubboBootstrap provider;
    private DubboBootstrap consumer;
    private ReferenceConfig<Greeter> reference;
    private Greeter greeter;
    /** A plain nacos-client naming view, to read what Dubbo registered. */
    private NamingService naming;
    /** E was registered on loopback: only then may the consumer connect to what it finds. */
    private boolean eOnLoopback;

    private Main(Contract c) throws IOException {
        this.c = c;
        this.ePort = freePort();
    }

    public static void main(String[] args) throws Exception {
        Contract c = Contract.init();
        checkLoopbackRule();
        c.nacosClientDirs();
        System.setProperty("user.home", c.cacheDir);
        // The consumer subscribes to application-level discovery only: the provider
        // registers its application instance, no interface-level entries.
        System.setProperty("dubbo.application.service-discovery.migration", "FORCE_APPLICATION");
        // Dubbo never registers a loopback host it is given (127.* is "invalid" to it) and
        // picks a network interface's address instead; with every interface ignored it
        // falls back to the host's own loopback address (127.0.0.1, or 127.0.1.1 where the
        // host name resolves there), the only kind of address anything here may connect to.
        System.setProperty("dubbo.network.interface.ignored", ".*");
        c.version("dubbo " + Version.getVersion() + " (dubbo-registry-nacos, nacos-client "
                + com.alibaba.nacos.common.utils.VersionUtils.version + ")");
        new Main(c).run();
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    private RegistryConfig registry() {
        RegistryConfig r = new RegistryConfig("nacos://" + c.serverAddr);
        // Naming only: no configuration or metadata in Nacos.
        r.setUseAsConfigCenter(false);
        r.setUseAsMetadataCenter(false);
        r.setGroup(c.group);
        Map<String, String> params = new HashMap<>();
        if (!c.namespace.isEmpty()) {
            params.put("namespace", c.namespace);
        }
        r.setParameters(params);
        if (!c.username.isEmpty()) {
            r.setUsername(c.username);
            r.setPassword(c.password);
        }
        return r;
    }

    private ApplicationConfig application(String name) {
        ApplicationConfig a = new ApplicationConfig(name);
        a.setQosEnable(false);
        a.setRegisterMode("instance");
        a.setMetadataType("local");
        return a;
    }

    /** Starts a provider application (name: the service) exporting Greeter on port. */
    private DubboBootstrap startProvider(String label, int port) {
        ProtocolConfig protocol = new ProtocolConfig("dubbo", port);
        protocol.setHost("127.0.0.1");
        ServiceConfig<Greeter> svc = new ServiceConfig<>();
        svc.setInterface(Greeter.class);
        svc.setRef(who -> "hello " + who + " from " + label);
        DubboBootstrap b = DubboBootstrap.newInstance(new FrameworkModel());
        b.application(application(c.service)).registry(registry()).protocol(protocol).service(svc).start();
        return b;
    }

    private void startConsumer() {
        reference = new ReferenceConfig<>();
        reference.setInterface(Greeter.class);
        reference.setProvidedBy(c.service);
        reference.setCheck(false);
        reference.setTimeout(3000);
        reference.setRetries(0);
        consumer = DubboBootstrap.newInstance(new FrameworkModel());
        consumer.application(application(c.service + "-consumer")).registry(registry()).reference(reference).start();
        greeter = reference.get();
    }

    private NamingService naming() throws Exception {
        if (naming == null) {
            Properties p = c.nacosProperties();
            naming = NamingFactory.createNamingService(p);
        }
        return naming;
    }

    private void run() {
        c.step("register_ephemeral", () -> {
            provider = startProvider("E", ePort);
            List<Instance>[] seen = new List[1];
            Contract.eventually(15_000, () -> {
                seen[0] = naming().getAllInstances(c.service, c.group, false);
                if (findE(seen[0]) == null) {
                    throw new Exception("listed " + addrs(seen[0]) + ", want 127.x.x.x:" + ePort);
                }
            });
            Instance e = findE(seen[0]);
            eOnLoopback = true;
            c.ephemeralAt(e.getIp(), ePort);
            return "Dubbo provider exported Greeter; its application instance " + e.getIp() + ":" + ePort
                    + " registered by the Nacos registry over gRPC (metadata revision "
                    + e.getMetadata().get("dubbo.metadata.revision") + ")";
        });
        c.waitFor("keepalive");
        c.notApplicable("register_persistent",
                "Dubbo registers its own provider instances only, ephemeral (kept by the connection); it has no call to register another, persistent instance");
        c.step("list_select", this::listSelect);
        DubboBootstrap[] x = new DubboBootstrap[1];
        c.step("subscribe", () -> subscribe(x));
        c.notApplicable("update", "Dubbo's registry has no call to change an instance's weight or metadata (it re-registers its own instance when its services change)");
        c.step("deregister", () -> deregister(x[0]));
        c.waitFor("restart");
        c.waitStop();
    }

    private String listSelect() throws Exception {
        if (!eOnLoopback) {
            throw new Exception("E is not registered on loopback (see register_ephemeral): no consumer is started");
        }
        startConsumer();
        String[] answer = new String[1];
        // The consumer's first address notification may follow its start by a push.
        Contract.eventually(15_000, () -> answer[0] = greeter.hello("consumer"));
        if (!answer[0].endsWith("from E")) {
            throw new Exception("RPC answered " + Contract.quote(answer[0]) + ", want E's provider");
        }
        List<Instance> all = naming().getAllInstances(c.service, c.group, false);
        List<Instance> healthy = naming().selectInstances(c.service, c.group, true, false);
        return "consumer found the provider through Nacos (providedBy " + c.service + "), RPC Greeter.hello: "
                + Contract.quote(answer[0]) + "; Nacos lists " + all.size() + ", healthy " + healthy.size()
                + " (no persistent P: see register_persistent)";
    }

    /**
     * X is a second provider application instance (its own framework model, hence its own
     * Nacos connection); the consumer must route an RPC to it, which it can only do once
     * Nacos told it about X.
     */
    private String subscribe(DubboBootstrap[] x) throws Exception {
        if (greeter == null) {
            throw new Exception("no consumer (see list_select)");
        }
        int xPort = freePort();
        long exported = System.currentTimeMillis();
        x[0] = startProvider("X", xPort);
        long start = System.currentTimeMillis();
        int[] calls = {0};
        Contract.eventually(15_000, () -> {
            calls[0]++;
            String a = greeter.hello("consumer");
            if (!a.endsWith("from X")) {
                throw new Exception("RPC answered by E (call " + calls[0] + ")");
            }
        });
        long seen = System.currentTimeMillis();
        return String.format("push (grpc): X (a 2nd provider, port %d) answered an RPC %.1fs after its export returned"
                + " (export took %.1fs, %d calls)", xPort, (seen - start) / 1000.0, (start - exported) / 1000.0, calls[0]);
    }

    /** X's provider stops (Dubbo deregisters it); the consumer must route to E only. */
    private String deregister(DubboBootstrap x) throws Exception {
        if (x == null) {
            throw new Exception("no X provider (subscribe failed)");
        }
        long stop = System.currentTimeMillis();
        x.stop();
        Contract.eventually(15_000, () -> {
            List<Instance> all = naming().getAllInstances(c.service, c.group, false);
            if (all.size() != 1 || findE(all) == null) {
                throw new Exception("Nacos lists " + addrs(all) + " after X's provider stopped, want E only");
            }
        });
        long gone = System.currentTimeMillis();
        for (int i = 0; i < 5; i++) {
            String a = greeter.hello("consumer");
            if (!a.endsWith("from E")) {
                throw new Exception("RPC answered " + Contract.quote(a) + " after X was deregistered");
            }
        }
        return String.format("X's provider stopped (DubboBootstrap.stop deregisters it): gone from Nacos in %.1fs, then 5 RPCs all answered by E"
                + " (the contract's P deregister does not apply: see register_persistent)", (gone - stop) / 1000.0);
    }

    /** E: the instance at E's port on a loopback address. */
    private Instance findE(List<Instance> list) {
        for (Instance i : list) {
            if (i.getPort() == ePort && isLoopback(i.getIp())) {
                return i;
            }
        }
        return null;
    }

    /**
     * The rule findE connects by, checked before anything starts (the module has no test
     * framework): all of 127.0.0.0/8 is loopback, nothing else is.
     */
    private static void checkLoopbackRule() {
        for (String ip : new String[] {"127.0.0.1", "127.0.1.1", "127.255.255.254"}) {
            if (!isLoopback(ip)) {
                Contract.fatal("isLoopback(" + ip + ") is false");
            }
        }
        for (String ip : new String[] {"10.9.0.1", "128.0.0.1", "127.0.0", "127.0.0.256", "127.0.0.1.5", "127.a.0.1", "localhost", "::1", ""}) {
            if (isLoopback(ip)) {
                Contract.fatal("isLoopback(" + ip + ") is true");
            }
        }
    }

    /**
     * Whether ip is an IPv4 literal in 127.0.0.0/8. Parsed by hand, not by InetAddress:
     * a name is never resolved, and nothing else counts as loopback.
     */
    static boolean isLoopback(String ip) {
        if (ip == null) {
            return false;
        }
        String[] parts = ip.split("\\.", -1);
        if (parts.length != 4 || !parts[0].equals("127")) {
            return false;
        }
        for (String p : parts) {
            if (p.isEmpty() || p.length() > 3 || !p.chars().allMatch(ch -> ch >= '0' && ch <= '9') || Integer.parseInt(p) > 255) {
                return false;
            }
        }
        return true;
    }

    private static String addrs(List<Instance> list) {
        List<String> out = new ArrayList<>();
        for (Instance i : list) {
            out.add(i.getIp() + ":" + i.getPort());
        }
        Collections.sort(out);
        return out.toString();
    }
}
