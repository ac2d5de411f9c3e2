package roster.compat.sca;

import com.alibaba.cloud.nacos.NacosDiscoveryProperties;
import com.alibaba.cloud.nacos.NacosServiceManager;
import com.alibaba.nacos.api.exception.NacosException;
import com.alibaba.nacos.api.naming.NamingMaintainService;
import com.alibaba.nacos.api.naming.NamingService;
import com.alibaba.nacos.api.naming.listener.NamingEvent;
import com.alibaba.nacos.api.naming.pojo.Instance;
import com.alibaba.nacos.common.utils.VersionUtils;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import org.springframework.boot.SpringBootVersion;
import org.springframework.boot.WebApplicationType;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.cloud.client.ServiceInstance;
import org.springframework.cloud.client.discovery.DiscoveryClient;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.web.client.RestClient;
import roster.compat.Contract;
import roster.compat.sca.consumer.ConsumerApplication;
import roster.compat.sca.provider.ProviderApplication;

/**
 * The Spring Cloud Alibaba row of the compatibility matrix. {@code run.sh sca} starts this
 * consumer, which speaks the contract: it starts the provider as a JVM of its own (same process
 * group, so the driver's SIGKILL takes both), whose registration is E; the consumer's
 * Spring-managed NamingService (NacosServiceManager) does P, X, update and deregister, and its
 * DiscoveryClient finds E and calls the provider over HTTP.
 *
 * <p>E is registered as the contract says (10.9.0.1:8080, through
 * spring.cloud.nacos.discovery.ip/port), an address nothing listens on; the provider listens on
 * 127.0.0.1 and adds that address to E's metadata ({@value #HTTP_KEY}), which the consumer
 * calls. See the "Spring Cloud Alibaba" paragraph of compat/README.md.
 */
public final class Main {
    static final String HTTP_KEY = "compat-http";

    private final Contract c;
    private Process provider;
    private long providerStarted;
    /** X's provider JVM: started during keepalive, registered and stopped in the subscribe step. */
    private Process providerX;
    private String providerXUrl;
    private ConfigurableApplicationContext ctx;
    private DiscoveryClient discovery;
    private NacosServiceManager manager;
    private NamingService naming;
    private NamingMaintainService maintain;

    private Main(Contract c) {
        this.c = c;
    }

    public static void main(String[] args) throws Exception {
        if (args.length > 0 && args[0].equals("provider")) {
            ProviderApplication.main(java.util.Arrays.copyOfRange(args, 1, args.length));
            return;
        }
        if (args.length > 0 && args[0].equals("train")) {
            train();
            return;
        }
        Contract c = Contract.init();
        System.setProperty("JM.LOG.PATH", c.cacheDir + "/consumer-logs");
        System.setProperty("JM.SNAPSHOT.PATH", c.cacheDir + "/consumer");
        c.version("spring-cloud-starter-alibaba-nacos-discovery " + scaVersion() + " (Spring Boot "
                + SpringBootVersion.getVersion() + ", Spring Cloud " + versions().getProperty("spring-cloud")
                + ", nacos-client " + VersionUtils.version + ")");
        new Main(c).run();
    }

    /**
     * A class-loading run for build.sh's class data sharing archive (-XX:ArchiveClassesAtExit):
     * the provider's web application with the Nacos discovery client, a NamingService call and
     * an HTTP call, against a port where nothing listens; nothing is registered. The archive
     * halves the applications' start-up on a busy machine.
     */
    private static void train() throws Exception {
        int nowhere;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            nowhere = s.getLocalPort();
        }
        Map<String, Object> p = new LinkedHashMap<>();
        p.put("spring.application.name", "compat-train");
        p.put("server.address", "127.0.0.1");
        p.put("server.port", "0");
        p.put("spring.main.banner-mode", "off");
        p.put("spring.cloud.nacos.discovery.server-addr", "127.0.0.1:" + nowhere);
        p.put("spring.cloud.nacos.discovery.register-enabled", "false");
        p.put("spring.cloud.nacos.discovery.naming-load-cache-at-start", "false");
        ConfigurableApplicationContext ctx = new SpringApplicationBuilder(ProviderApplication.class).properties(p).run();
        try {
            NamingService n = ctx.getBean(NacosServiceManager.class).getNamingService();
            n.getAllInstances("compat-train", "DEFAULT_GROUP", false);
        } catch (Exception expected) {
            // No server: only the classes matter.
        }
        try {
            ctx.getBean(DiscoveryClient.class).getInstances("compat-train");
        } catch (Exception expected) {
            // As above.
        }
        int port = ((org.springframework.boot.web.context.WebServerApplicationContext) ctx).getWebServer().getPort();
        RestClient.create().get().uri("http://127.0.0.1:" + port + "/hello").retrieve().body(String.class);
        // halt: the archive is written all the same, without the shutdown hooks' waits.
        Runtime.getRuntime().halt(0);
    }

    private static Properties versions() {
        Properties p = new Properties();
        try (InputStream in = Main.class.getResourceAsStream("/roster-compat-versions.properties")) {
            if (in != null) {
                p.load(in);
            }
        } catch (IOException ignored) {
            // Unknown versions are reported as null.
        }
        return p;
    }

    private static String scaVersion() {
        String v = NacosDiscoveryProperties.class.getPackage().getImplementationVersion();
        return v != null ? v : versions().getProperty("spring-cloud-alibaba");
    }

    /** Spring properties both applications share: where Nacos is and who the client is. */
    private Map<String, String> discoveryProperties() {
        Map<String, String> p = new LinkedHashMap<>();
        String d = "spring.cloud.nacos.discovery.";
        p.put(d + "server-addr", c.serverAddr);
        if (!c.namespace.isEmpty()) {
            p.put(d + "namespace", c.namespace);
        }
        p.put(d + "group", c.group);
        if (!c.username.isEmpty()) {
            p.put(d + "username", c.username);
            p.put(d + "password", c.password);
        }
        p.put(d + "naming-load-cache-at-start", "false");
        p.put(d + "watch.enabled", "false");
        p.put("spring.main.banner-mode", "off");
        return p;
    }

    /** The provider's settings: E's registration as the contract describes it. */
    private Map<String, String> providerProperties(int httpPort, String ip, Map<String, String> metadata, boolean registerAtStart) {
        Map<String, String> p = discoveryProperties();
        String d = "spring.cloud.nacos.discovery.";
        p.put("server.address", "127.0.0.1");
        p.put("server.port", Integer.toString(httpPort));
        p.put(d + "service", c.service);
        p.put(d + "ip", ip);
        p.put(d + "port", Integer.toString(Contract.PORT));
        p.put(d + "cluster-name", Contract.CLUSTER);
        p.put(d + "ephemeral", "true");
        p.put(d + "heart-beat-interval", Long.toString(c.heartbeatIntervalMs));
        p.put(d + "heart-beat-timeout", Long.toString(c.heartbeatTimeoutMs));
        p.put(d + "ip-delete-timeout", Long.toString(c.deleteTimeoutMs));
        p.put("spring.application.name", c.service);
        for (Map.Entry<String, String> e : metadata.entrySet()) {
            p.put(d + "metadata." + e.getKey(), e.getValue());
        }
        p.put(d + "metadata." + HTTP_KEY, "http://127.0.0.1:" + httpPort);
        if (!registerAtStart) {
            p.put(d + "register-enabled", "false");
        }
        return p;
    }

    /**
     * Starts a provider JVM (name: its log prefix and folder) and returns it with its HTTP
     * address; its output goes to this program's stderr.
     */
    private Process startProvider(String name, String ip, Map<String, String> metadata, boolean registerAtStart, String[] url)
            throws IOException {
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = s.getLocalPort();
        }
        List<String> cmd = new ArrayList<>();
        cmd.add(ProcessHandle.current().info().command().orElse(System.getProperty("java.home") + "/bin/java"));
        for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (!a.startsWith("-DJM.") && !a.startsWith("-agentlib") && !a.startsWith("-javaagent")) {
                cmd.add(a);
            }
        }
        cmd.add("-DJM.LOG.PATH=" + c.cacheDir + "/" + name + "-logs");
        cmd.add("-DJM.SNAPSHOT.PATH=" + c.cacheDir + "/" + name);
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(Main.class.getName());
        cmd.add("provider");
        for (Map.Entry<String, String> e : providerProperties(port, ip, metadata, registerAtStart).entrySet()) {
            cmd.add("--" + e.getKey() + "=" + e.getValue());
        }
        // The child stays in this JVM's process group: the driver's SIGKILL of the group
        // takes it too. Its stdin is a pipe from here (see ProviderApplication.watchParent).
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        url[0] = "http://127.0.0.1:" + port;
        Contract.log(name + " JVM started, pid " + p.pid() + ", HTTP on " + url[0]);
        Thread pump = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    System.err.println("[" + name + "] " + line);
                }
            } catch (IOException ignored) {
                // The provider is gone.
            }
        }, name + "-log");
        pump.setDaemon(true);
        pump.start();
        return p;
    }

    private void startConsumer() {
        Map<String, Object> p = new LinkedHashMap<>(discoveryProperties());
        p.put("spring.application.name", c.service + "-consumer");
        p.put("spring.cloud.nacos.discovery.register-enabled", "false");
        ctx = new SpringApplicationBuilder(ConsumerApplication.class)
                .web(WebApplicationType.NONE)
                .properties(p)
                .run();
        discovery = ctx.getBean(DiscoveryClient.class);
        manager = ctx.getBean(NacosServiceManager.class);
        naming = manager.getNamingService();
        maintain = manager.getNamingMaintainService(ctx.getBean(NacosDiscoveryProperties.class).getNacosProperties());
    }

    private void run() {
        long consumerMs = -1;
        try {
            providerStarted = System.currentTimeMillis();
            provider = startProvider("provider", Contract.EPHEMERAL_IP, Map.of("role", "ephemeral"), true, new String[1]);
            long t = System.currentTimeMillis();
            startConsumer();
            consumerMs = System.currentTimeMillis() - t;
        } catch (Exception e) {
            Contract.log("start-up failed: " + Contract.describe(e));
            e.printStackTrace(System.err);
        }
        long consumerStartMs = consumerMs;
        c.step("register_ephemeral", () -> registeredE(consumerStartMs));
        // X's provider boots while the driver watches E (the client is idle then).
        try {
            String[] url = new String[1];
            providerX = startProvider("provider-x", Contract.EXTRA_IP, Map.of(), false, url);
            providerXUrl = url[0];
        } catch (IOException e) {
            Contract.log("provider-x did not start: " + Contract.describe(e));
        }
        c.waitFor("keepalive");
        c.step("register_persistent", () -> {
            naming().registerInstance(c.persistentService, c.group, instance(Contract.PERSISTENT_IP, 1, new HashMap<>(), false));
            return "NacosServiceManager's NamingService (HTTP v1)";
        });
        c.step("list_select", this::listSelect);
        c.step("subscribe", this::subscribe);
        c.step("update", this::update);
        c.step("deregister", this::deregister);
        c.waitFor("restart");
        c.waitStop();
    }

    private NamingService naming() throws Exception {
        if (naming == null) {
            throw new Exception("the consumer application did not start");
        }
        return naming;
    }

    /** Waits until the provider's registration (E) is listed healthy, with its metadata. */
    private String registeredE(long consumerStartMs) throws Exception {
        if (provider == null) {
            throw new Exception("the provider JVM did not start");
        }
        NamingService n = naming();
        long[] refusedSince = {0};
        Contract.eventually(60_000, () -> {
            if (!provider.isAlive()) {
                throw new Contract.GiveUp("the provider JVM exited with status " + provider.exitValue() + " (see the log)", null);
            }
            List<Instance> list;
            try {
                list = n.getAllInstances(c.service, c.group, false);
                refusedSince[0] = 0;
            } catch (NacosException ex) {
                // Refused (403) for longer than the client takes to log in again: give up.
                if (ex.getErrCode() == NacosException.NO_RIGHT) {
                    long now = System.currentTimeMillis();
                    if (refusedSince[0] == 0) {
                        refusedSince[0] = now;
                    } else if (now - refusedSince[0] > 6_000) {
                        throw new Contract.GiveUp("refused for 6s: " + Contract.describe(ex), ex);
                    }
                }
                throw new Exception("code " + ex.getErrCode() + ": " + Contract.describe(ex), ex);
            }
            Instance e = find(list, Contract.EPHEMERAL_IP);
            if (e == null) {
                throw new Exception("E not listed yet");
            }
            if (!e.isHealthy() || !e.isEnabled() || !"ephemeral".equals(e.getMetadata().get("role")) || !e.isEphemeral()) {
                throw new Exception("E listed as " + e);
            }
        });
        long since = System.currentTimeMillis() - providerStarted;
        return "provider JVM (pid " + provider.pid() + ") registered by NacosServiceRegistry over grpc, listed "
                + since + " ms after its launch (consumer context up in " + consumerStartMs + " ms)";
    }

    private Instance instance(String ip, double weight, Map<String, String> md, boolean ephemeral) {
        Instance i = new Instance();
        i.setIp(ip);
        i.setPort(Contract.PORT);
        i.setWeight(weight);
        i.setClusterName(Contract.CLUSTER);
        i.setMetadata(md);
        i.setEphemeral(ephemeral);
        i.setHealthy(true);
        i.setEnabled(true);
        return i;
    }

    private static Instance find(List<Instance> list, String ip) {
        for (Instance i : list) {
            if (ip.equals(i.getIp()) && i.getPort() == Contract.PORT) {
                return i;
            }
        }
        return null;
    }

    private static String addrs(List<Instance> list) {
        List<String> out = new ArrayList<>();
        for (Instance i : list) {
            out.add(i.getIp() + ":" + i.getPort());
        }
        Collections.sort(out);
        return out.toString();
    }

    private static ServiceInstance findSi(List<ServiceInstance> list, String ip) {
        for (ServiceInstance s : list) {
            if (ip.equals(s.getHost()) && s.getPort() == Contract.PORT) {
                return s;
            }
        }
        return null;
    }

    private static String siAddrs(List<ServiceInstance> list) {
        List<String> out = new ArrayList<>();
        for (ServiceInstance s : list) {
            out.add(s.getHost() + ":" + s.getPort());
        }
        Collections.sort(out);
        return out.toString();
    }

    private String listSelect() throws Exception {
        NamingService n = naming();
        String[] detail = new String[1];
        ServiceInstance[] e = new ServiceInstance[1];
        Contract.eventually(10_000, () -> {
            // Spring Cloud's view: DiscoveryClient (NacosDiscoveryClient, healthy instances).
            List<ServiceInstance> es = discovery.getInstances(c.service);
            e[0] = findSi(es, Contract.EPHEMERAL_IP);
            if (e[0] == null) {
                throw new Exception("DiscoveryClient.getInstances(" + c.service + ") = " + siAddrs(es) + ", want E");
            }
            List<ServiceInstance> ps = discovery.getInstances(c.persistentService);
            if (findSi(ps, Contract.PERSISTENT_IP) == null) {
                throw new Exception("DiscoveryClient.getInstances(" + c.persistentService + ") = " + siAddrs(ps) + ", want P");
            }
            List<String> services = discovery.getServices();
            if (!services.contains(c.service) || !services.contains(c.persistentService)) {
                throw new Exception("DiscoveryClient.getServices() = " + services + ", want both services");
            }
            // The Nacos client's view, through the Spring-managed NamingService.
            List<Instance> all = new ArrayList<>(n.getAllInstances(c.service, c.group, false));
            all.addAll(n.getAllInstances(c.persistentService, c.group, false));
            if (find(all, Contract.EPHEMERAL_IP) == null || find(all, Contract.PERSISTENT_IP) == null) {
                throw new Exception("getAllInstances = " + addrs(all) + ", want E and P");
            }
            List<Instance> healthy = new ArrayList<>(n.selectInstances(c.service, c.group, true, false));
            healthy.addAll(n.selectInstances(c.persistentService, c.group, true, false));
            if (find(healthy, Contract.EPHEMERAL_IP) == null || find(healthy, Contract.PERSISTENT_IP) == null) {
                throw new Exception("selectInstances(healthy) = " + addrs(healthy) + ", want E and P");
            }
            Instance one = n.selectOneHealthyInstance(c.service, c.group, false);
            if (!Contract.EPHEMERAL_IP.equals(one.getIp())) {
                throw new Exception("selectOneHealthyInstance = " + one.getIp() + ", want E");
            }
            detail[0] = "DiscoveryClient " + es.size() + "+" + ps.size() + ", list " + all.size() + ", healthy "
                    + healthy.size() + ", selectOne " + one.getIp();
        });
        // A real HTTP call to the instance DiscoveryClient found: at the address the provider
        // listens on, which it published in E's metadata (10.9.0.1 is a placeholder).
        String url = e[0].getMetadata().get(HTTP_KEY);
        if (url == null) {
            throw new Exception("E has no " + HTTP_KEY + " metadata: " + e[0].getMetadata());
        }
        String body = RestClient.create().get().uri(url + "/hello").retrieve().body(String.class);
        if (body == null || !body.contains(c.service)) {
            throw new Exception("GET " + url + "/hello answered " + body);
        }
        return detail[0] + ", GET " + url + "/hello: " + body;
    }

    /**
     * Subscribes with the Spring-managed NamingService; X is a second provider JVM, registered
     * through its NacosServiceRegistry on request, found with DiscoveryClient and called over
     * HTTP, then stopped (SIGTERM): it must leave the consumer's view.
     */
    private String subscribe() throws Exception {
        NamingService n = naming();
        if (providerX == null) {
            throw new Exception("X's provider JVM did not start");
        }
        BlockingQueue<Long> sawX = new ArrayBlockingQueue<>(1);
        BlockingQueue<Long> xGone = new ArrayBlockingQueue<>(1);
        boolean[] seen = new boolean[1];
        n.subscribe(c.service, c.group, event -> {
            if (event instanceof NamingEvent ne) {
                List<Instance> list = ne.getInstances();
                Contract.log("callback: " + addrs(list));
                if (find(list, Contract.EXTRA_IP) != null) {
                    seen[0] = true;
                    sawX.offer(System.currentTimeMillis());
                } else if (seen[0]) {
                    xGone.offer(System.currentTimeMillis());
                }
            }
        });
        RestClient http = RestClient.create();
        Contract.eventually(60_000, () -> {
            if (!providerX.isAlive()) {
                throw new Contract.GiveUp("X's provider JVM exited with status " + providerX.exitValue() + " (see the log)", null);
            }
            http.get().uri(providerXUrl + "/hello").retrieve().body(String.class);
        });
        long registered = System.currentTimeMillis();
        String answer = http.post().uri(providerXUrl + "/register").retrieve().body(String.class);
        Contract.log("provider-x: " + answer);
        Long at = sawX.poll(15, TimeUnit.SECONDS);
        if (at == null) {
            throw new Exception("no callback showed X within 15s");
        }
        Contract.log("X seen " + (at - registered) + " ms after its registration");
        ServiceInstance[] x = new ServiceInstance[1];
        Contract.eventually(5_000, () -> {
            List<ServiceInstance> es = discovery.getInstances(c.service);
            x[0] = findSi(es, Contract.EXTRA_IP);
            if (x[0] == null || findSi(es, Contract.EPHEMERAL_IP) == null) {
                throw new Exception("DiscoveryClient.getInstances = " + siAddrs(es) + ", want E and X");
            }
        });
        String url = x[0].getMetadata().get(HTTP_KEY);
        String body = http.get().uri(url + "/hello").retrieve().body(String.class);
        Contract.log("GET " + url + "/hello: " + body);
        long stop = System.currentTimeMillis();
        providerX.destroy();
        if (xGone.poll(15, TimeUnit.SECONDS) == null) {
            throw new Exception("no callback without X within 15s of stopping its provider");
        }
        Contract.eventually(5_000, () -> {
            List<ServiceInstance> es = discovery.getInstances(c.service);
            if (findSi(es, Contract.EXTRA_IP) != null || findSi(es, Contract.EPHEMERAL_IP) == null) {
                throw new Exception("DiscoveryClient.getInstances = " + siAddrs(es) + " after X's provider stopped, want E only");
            }
        });
        long gone = System.currentTimeMillis() - stop;
        // nacos-client 2.x does not poll subscribed services by default: changes are pushed.
        return String.format("push (grpc); X from a 2nd provider JVM, called over HTTP, stopped: gone from DiscoveryClient in %.1fs",
                gone / 1000.0);
    }

    private String update() throws Exception {
        if (maintain == null) {
            throw new Exception("no NamingMaintainService");
        }
        Instance p = instance(Contract.PERSISTENT_IP, 2.5, new HashMap<>(Map.of("v", "2")), false);
        maintain.updateInstance(c.persistentService, c.group, p);
        NamingService n = naming();
        Contract.eventually(15_000, () -> {
            List<Instance> all = n.getAllInstances(c.persistentService, c.group, false);
            Instance i = find(all, Contract.PERSISTENT_IP);
            if (i == null) {
                throw new Exception("read back: P not listed: " + addrs(all));
            }
            if (i.getWeight() != 2.5 || !"2".equals(i.getMetadata().get("v"))) {
                throw new Exception("read back: P has weight " + i.getWeight() + ", metadata " + i.getMetadata());
            }
        });
        return "weight 2.5, metadata v=2 (NacosServiceManager's NamingMaintainService)";
    }

    private String deregister() throws Exception {
        NamingService n = naming();
        n.deregisterInstance(c.persistentService, c.group, instance(Contract.PERSISTENT_IP, 1, new HashMap<>(), false));
        Contract.eventually(15_000, () -> {
            List<Instance> all = n.getAllInstances(c.persistentService, c.group, false);
            if (find(all, Contract.PERSISTENT_IP) != null) {
                throw new Exception("read back: P still listed: " + addrs(all));
            }
            List<ServiceInstance> ps = discovery.getInstances(c.persistentService);
            if (findSi(ps, Contract.PERSISTENT_IP) != null) {
                throw new Exception("DiscoveryClient still lists P: " + siAddrs(ps));
            }
        });
        return "";
    }
}
