package roster.compat.java1;

import com.alibaba.nacos.api.naming.NamingFactory;
import com.alibaba.nacos.api.naming.NamingMaintainFactory;
import com.alibaba.nacos.api.naming.NamingMaintainService;
import com.alibaba.nacos.api.naming.NamingService;
import com.alibaba.nacos.api.naming.listener.NamingEvent;
import com.alibaba.nacos.api.naming.pojo.Instance;
import com.alibaba.nacos.common.utils.VersionUtils;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.logging.Handler;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import roster.compat.Contract;

/**
 * The compatibility scenario of compat/README.md with nacos-client 1.4.x: E kept alive by the
 * client's beats (HTTP v1), P persistent, subscriptions fed by UDP pushes (and polling).
 */
public final class Main {
    private final Contract c;
    private final NamingService naming;
    private final NamingMaintainService maintain;
    /** When the client last logged a UDP push that listed X (0: never). */
    private volatile long pushWithXAt;

    private Main(Contract c) throws Exception {
        this.c = c;
        Properties p = c.nacosProperties();
        naming = NamingFactory.createNamingService(p);
        maintain = NamingMaintainFactory.createMaintainService(p);
    }

    public static void main(String[] args) throws Exception {
        Contract c = Contract.init();
        c.nacosClientDirs();
        c.version("nacos-client " + VersionUtils.version);
        Main m = new Main(c);
        m.watchPushes();
        m.run();
    }

    /** Notes the client's own log line for a received UDP push that lists X. */
    private void watchPushes() {
        Logger naming = Logger.getLogger("com.alibaba.nacos.client.naming");
        naming.addHandler(new Handler() {
            @Override
            public void publish(LogRecord r) {
                String msg = r.getMessage();
                if (msg != null && msg.contains("received push data") && msg.contains(Contract.EXTRA_IP)) {
                    pushWithXAt = System.currentTimeMillis();
                }
            }

            @Override
            public void flush() {
            }

            @Override
            public void close() {
            }
        });
    }

    private void run() {
        c.step("register_ephemeral", () -> {
            naming.registerInstance(c.service, c.group, instance(Contract.EPHEMERAL_IP, 1, c.ephemeralMetadata(), true));
            return "beats every " + c.heartbeatIntervalMs + " ms (preserved.heart.beat.interval)";
        });
        c.waitFor("keepalive");
        c.step("register_persistent", () -> {
            naming.registerInstance(c.persistentService, c.group, instance(Contract.PERSISTENT_IP, 1, new HashMap<>(), false));
            return "";
        });
        c.step("list_select", this::listSelect);
        c.step("subscribe", this::subscribe);
        c.step("update", this::update);
        c.step("deregister", this::deregister);
        c.waitFor("restart");
        c.waitStop();
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

    private static boolean has(List<Instance> list, String ip) {
        for (Instance i : list) {
            if (ip.equals(i.getIp()) && i.getPort() == Contract.PORT) {
                return true;
            }
        }
        return false;
    }

    private static String addrs(List<Instance> list) {
        List<String> out = new ArrayList<>();
        for (Instance i : list) {
            out.add(i.getIp() + ":" + i.getPort());
        }
        Collections.sort(out);
        return out.toString();
    }

    private List<Instance> both(boolean healthyOnly) throws Exception {
        List<Instance> out = new ArrayList<>();
        for (String s : c.service.equals(c.persistentService) ? List.of(c.service) : List.of(c.service, c.persistentService)) {
            out.addAll(healthyOnly ? naming.selectInstances(s, c.group, true, false) : naming.getAllInstances(s, c.group, false));
        }
        return out;
    }

    private String listSelect() throws Exception {
        String[] detail = new String[1];
        Contract.eventually(10_000, () -> {
            List<Instance> all = both(false);
            if (!has(all, Contract.EPHEMERAL_IP) || !has(all, Contract.PERSISTENT_IP)) {
                throw new Exception("getAllInstances = " + addrs(all) + ", want E and P");
            }
            List<Instance> healthy = both(true);
            if (!has(healthy, Contract.EPHEMERAL_IP) || !has(healthy, Contract.PERSISTENT_IP)) {
                throw new Exception("selectInstances(healthy) = " + addrs(healthy) + ", want E and P");
            }
            Instance one = naming.selectOneHealthyInstance(c.service, c.group, false);
            if (!Contract.EPHEMERAL_IP.equals(one.getIp())) {
                throw new Exception("selectOneHealthyInstance = " + one.getIp() + ", want E");
            }
            detail[0] = "list " + all.size() + ", healthy " + healthy.size() + ", selectOne " + one.getIp();
        });
        return detail[0];
    }

    private String subscribe() throws Exception {
        BlockingQueue<Long> sawX = new ArrayBlockingQueue<>(1);
        naming.subscribe(c.service, c.group, event -> {
            if (event instanceof NamingEvent) {
                List<Instance> list = ((NamingEvent) event).getInstances();
                Contract.log("callback: " + addrs(list));
                if (has(list, Contract.EXTRA_IP)) {
                    sawX.offer(System.currentTimeMillis());
                }
            }
        });
        long registered = System.currentTimeMillis();
        naming.registerInstance(c.service, c.group, instance(Contract.EXTRA_IP, 1, c.timings(), true));
        Long at = sawX.poll(15, TimeUnit.SECONDS);
        if (at == null) {
            throw new Exception("no callback showed X within 15s");
        }
        // The client updates a subscription from UDP pushes and from its polling task; the
        // push receiver logs each packet, which tells which one brought X.
        long push = pushWithXAt;
        String how = push != 0 && push >= registered && push <= at ? "push (udp)" : "poll";
        Contract.log("X seen " + (at - registered) + " ms after its registration, " + how);
        naming.deregisterInstance(c.service, c.group, instance(Contract.EXTRA_IP, 1, c.timings(), true));
        return how;
    }

    private String update() throws Exception {
        Instance p = instance(Contract.PERSISTENT_IP, 2.5, new HashMap<>(Map.of("v", "2")), false);
        maintain.updateInstance(c.persistentService, c.group, p);
        Contract.eventually(15_000, () -> {
            List<Instance> all = naming.getAllInstances(c.persistentService, c.group, false);
            for (Instance i : all) {
                if (Contract.PERSISTENT_IP.equals(i.getIp()) && i.getPort() == Contract.PORT) {
                    if (i.getWeight() != 2.5 || !"2".equals(i.getMetadata().get("v"))) {
                        throw new Exception("read back: P has weight " + i.getWeight() + ", metadata " + i.getMetadata());
                    }
                    return;
                }
            }
            throw new Exception("read back: P not listed: " + addrs(all));
        });
        return "weight 2.5, metadata v=2 (NamingMaintainService.updateInstance)";
    }

    private String deregister() throws Exception {
        naming.deregisterInstance(c.persistentService, c.group, instance(Contract.PERSISTENT_IP, 1, new HashMap<>(), false));
        Contract.eventually(15_000, () -> {
            List<Instance> all = naming.getAllInstances(c.persistentService, c.group, false);
            if (has(all, Contract.PERSISTENT_IP)) {
                throw new Exception("read back: P still listed: " + addrs(all));
            }
        });
        return "";
    }
}
