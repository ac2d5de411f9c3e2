package roster.compat.java2;

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
import roster.compat.Contract;

/**
 * The compatibility scenario of compat/README.md with nacos-client 2.x: E registered over gRPC
 * (alive as long as the connection), P persistent (the client sends it over HTTP v1),
 * subscriptions fed by gRPC pushes.
 */
public final class Main {
    private final Contract c;
    private final NamingService naming;
    private final NamingMaintainService maintain;
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
        m.run();
    }

    private void run() {
        c.step("register_ephemeral", () -> {
            naming.registerInstance(c.service, c.group, instance(Contract.EPHEMERAL_IP, 1, c.ephemeralMetadata(), true));
            return "grpc";
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
        // A 2.x connection holds one instance per service: X registered on the connection
        // that holds E would replace E, so X gets a client (and a connection) of its own.
        NamingService x = NamingFactory.createNamingService(c.nacosProperties());
        try {
            long registered = System.currentTimeMillis();
            x.registerInstance(c.service, c.group, instance(Contract.EXTRA_IP, 1, new HashMap<>(), true));
            Long at = sawX.poll(15, TimeUnit.SECONDS);
            if (at == null) {
                throw new Exception("no callback showed X within 15s");
            }
            Contract.log("X seen " + (at - registered) + " ms after its registration");
            x.deregisterInstance(c.service, c.group, instance(Contract.EXTRA_IP, 1, new HashMap<>(), true));
        } finally {
            x.shutDown();
        }
        // The 2.x client does not poll subscribed services (asyncQuerySubscribeService is
        // off by default): a callback after subscribe() returned comes from a push.
        return "push (grpc)";
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
