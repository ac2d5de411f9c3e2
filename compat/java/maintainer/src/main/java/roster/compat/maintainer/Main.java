package roster.compat.maintainer;

import com.alibaba.nacos.api.exception.NacosException;
import com.alibaba.nacos.api.model.Page;
import com.alibaba.nacos.api.model.response.NacosMember;
import com.alibaba.nacos.api.naming.NamingFactory;
import com.alibaba.nacos.api.naming.NamingService;
import com.alibaba.nacos.api.naming.listener.NamingEvent;
import com.alibaba.nacos.api.naming.pojo.Instance;
import com.alibaba.nacos.api.naming.pojo.Service;
import com.alibaba.nacos.api.naming.pojo.maintainer.ServiceDetailInfo;
import com.alibaba.nacos.api.naming.pojo.maintainer.ServiceView;
import com.alibaba.nacos.api.naming.pojo.maintainer.SubscriberInfo;
import com.alibaba.nacos.common.utils.VersionUtils;
import com.alibaba.nacos.maintainer.client.naming.NamingMaintainerFactory;
import com.alibaba.nacos.maintainer.client.naming.NamingMaintainerService;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import roster.compat.Contract;

/**
 * The maintainer-client row: Nacos' own admin client (Nacos 3's {@code /nacos/v3/admin}
 * API over HTTP) creates a service, registers, lists, updates and deregisters instances,
 * reads the service's subscribers and the cluster's nodes.
 *
 * <p>An admin client has no ephemeral mechanism (Nacos 3's admin API has no heartbeat), so
 * there is no E: the steps around E are reported n/a, and the persistent service is
 * {@code ROSTER_SERVICE} itself (no E lives there), which the maintainer creates. The
 * subscriber whose subscription it reads is a nacos-client of the same release; that
 * client's push of X, registered by the maintainer client, is the subscribe step.
 */
public final class Main {
    private final Contract c;
    private final NamingMaintainerService admin;
    private final Service service;
    private NamingService subscriber;

    private Main(Contract c) throws NacosException {
        this.c = c;
        admin = NamingMaintainerFactory.createNamingMaintainerService(c.nacosProperties());
        service = new Service();
        service.setNamespaceId(c.namespace.isEmpty() ? "public" : c.namespace);
        service.setGroupName(c.group);
        service.setName(c.service);
        service.setEphemeral(false);
        service.setProtectThreshold(0);
    }

    public static void main(String[] args) throws Exception {
        Contract c = Contract.init();
        c.nacosClientDirs();
        c.version("nacos-maintainer-client " + VersionUtils.version);
        new Main(c).run();
    }

    private void run() {
        // The first step writes: a run without credentials is judged on it.
        c.step("register_persistent", this::registerPersistent);
        String noE = "the maintainer client is an admin client over HTTP: it can register an ephemeral instance but has no heartbeat to keep one (Nacos 3's admin API has none), so there is no E";
        c.notApplicable("register_ephemeral", noE);
        c.notApplicable("keepalive", "no E (see register_ephemeral)");
        c.step("list_select", this::listSelect);
        c.step("subscribe", this::subscribe);
        c.step("update", this::update);
        c.step("deregister", this::deregister);
        c.notApplicable("restart", "no E to come back (see register_ephemeral)");
        c.notApplicable("stop", "no E to remove (see register_ephemeral)");
        try {
            admin.shutdown();
            if (subscriber != null) {
                subscriber.shutDown();
            }
        } catch (NacosException e) {
            Contract.log("shutdown: " + Contract.describe(e));
        }
        System.exit(0);
    }

    private Instance instance(String ip, double weight, Map<String, String> md) {
        Instance i = new Instance();
        i.setIp(ip);
        i.setPort(Contract.PORT);
        i.setWeight(weight);
        i.setClusterName(Contract.CLUSTER);
        i.setMetadata(md);
        i.setEphemeral(false);
        i.setHealthy(true);
        i.setEnabled(true);
        return i;
    }

    private String registerPersistent() throws Exception {
        String created = admin.createService(service);
        String registered = admin.registerInstance(service, instance(Contract.PERSISTENT_IP, 1, new HashMap<>()));
        return "createService (POST /v3/admin/ns/service, persistent): " + created
                + "; registerInstance (POST /v3/admin/ns/instance, ephemeral=false): " + registered;
    }

    private List<Instance> list(boolean healthyOnly) throws NacosException {
        return admin.listInstances(service, Contract.CLUSTER, healthyOnly);
    }

    private String listSelect() throws Exception {
        List<Instance> all = list(false);
        List<Instance> healthy = list(true);
        if (find(all, Contract.PERSISTENT_IP) == null || find(healthy, Contract.PERSISTENT_IP) == null) {
            throw new Exception("listInstances = " + addrs(all) + ", healthy " + addrs(healthy) + ", want P");
        }
        ServiceDetailInfo detail = admin.getServiceDetail(service);
        if (detail.isEphemeral() || !c.service.equals(detail.getServiceName()) || !c.group.equals(detail.getGroupName())) {
            throw new Exception("getServiceDetail = " + detail.getGroupName() + "@@" + detail.getServiceName()
                    + ", ephemeral " + detail.isEphemeral() + ", want " + c.group + "@@" + c.service + ", persistent");
        }
        Page<ServiceView> page = admin.listServices(service.getNamespaceId(), c.group, c.service, false, 1, 100);
        ServiceView view = null;
        for (ServiceView v : page.getPageItems()) {
            if (c.service.equals(v.getName()) && c.group.equals(v.getGroupName())) {
                view = v;
            }
        }
        if (view == null || view.getIpCount() != 1) {
            throw new Exception("listServices: " + (view == null ? "service not in the page of " + page.getTotalCount()
                    : "ipCount " + view.getIpCount() + ", want 1"));
        }
        return "listInstances " + all.size() + ", healthy " + healthy.size() + " (the admin API has no select-one)"
                + "; getServiceDetail: persistent, clusters " + detail.getClusterMap().keySet()
                + "; listServices: ipCount " + view.getIpCount() + "; " + clusterNodes();
    }

    /** The node list: open to the administrator only, in Nacos as in Roster. */
    private String clusterNodes() throws Exception {
        try {
            Collection<NacosMember> nodes = admin.listClusterNodes(null, null);
            if (nodes.isEmpty()) {
                throw new Exception("listClusterNodes: no node");
            }
            List<String> out = new ArrayList<>();
            for (NacosMember m : nodes) {
                out.add(m.getAddress() + " " + m.getState());
            }
            return "listClusterNodes: " + out;
        } catch (NacosException e) {
            if (!c.username.isEmpty() && e.getErrCode() == 403) {
                return "listClusterNodes refused to this namespace user (" + Contract.describe(e)
                        + "): the node list needs an administrator";
            }
            throw e;
        }
    }

    private String subscribe() throws Exception {
        subscriber = NamingFactory.createNamingService(c.nacosProperties());
        // The 3.x client connects in the background; subscribe() refuses until it has.
        Contract.eventually(10_000, () -> {
            if (!"UP".equals(subscriber.getServerStatus())) {
                throw new Exception("subscriber not connected yet (" + subscriber.getServerStatus() + ")");
            }
        });
        BlockingQueue<Long> sawX = new ArrayBlockingQueue<>(1);
        subscriber.subscribe(c.service, c.group, event -> {
            if (event instanceof NamingEvent) {
                List<Instance> list = ((NamingEvent) event).getInstances();
                Contract.log("subscriber callback: " + addrs(list));
                if (find(list, Contract.EXTRA_IP) != null) {
                    sawX.offer(System.currentTimeMillis());
                }
            }
        });
        List<SubscriberInfo> subs = new ArrayList<>();
        Contract.eventually(10_000, () -> {
            subs.clear();
            subs.addAll(admin.getSubscribers(service, 1, 100, true).getPageItems());
            if (subs.isEmpty()) {
                throw new Exception("getSubscribers: none yet");
            }
        });
        SubscriberInfo s = subs.get(0);
        Instance x = instance(Contract.EXTRA_IP, 1, new HashMap<>());
        long registered = System.currentTimeMillis();
        admin.registerInstance(service, x);
        Long at = sawX.poll(15, TimeUnit.SECONDS);
        if (at == null) {
            throw new Exception("the subscriber saw no X within 15s of registerInstance");
        }
        admin.deregisterInstance(service, x);
        return String.format("getSubscribers (GET /v3/admin/ns/service/subscribers): %d, %s agent %s; X registered by the"
                + " maintainer client, push (grpc) to the nacos-client %s subscriber %d ms later", subs.size(), s.getAddress(),
                s.getAgent(), VersionUtils.version, at - registered);
    }

    private String update() throws Exception {
        String answer = admin.updateInstance(service, instance(Contract.PERSISTENT_IP, 2.5, new HashMap<>(Map.of("v", "2"))));
        Contract.eventually(10_000, () -> {
            Instance p = find(list(false), Contract.PERSISTENT_IP);
            if (p == null) {
                throw new Exception("read back: P not listed");
            }
            if (p.getWeight() != 2.5 || !"2".equals(p.getMetadata().get("v"))) {
                throw new Exception("read back: P has weight " + p.getWeight() + ", metadata " + p.getMetadata());
            }
        });
        return "weight 2.5, metadata v=2 (updateInstance, PUT /v3/admin/ns/instance: " + answer + "; read back by listInstances)";
    }

    private String deregister() throws Exception {
        admin.deregisterInstance(service, instance(Contract.PERSISTENT_IP, 1, new HashMap<>()));
        String[] how = new String[1];
        Contract.eventually(10_000, () -> {
            try {
                List<Instance> all = list(false);
                if (find(all, Contract.PERSISTENT_IP) != null) {
                    throw new Exception("read back: P still listed: " + addrs(all));
                }
                how[0] = "listInstances: " + addrs(all);
            } catch (NacosException e) {
                // An emptied cluster is "not found" to Nacos' instance list.
                if (e.getErrCode() != 404) {
                    throw e;
                }
                String m = e.getErrMsg() == null ? "" : e.getErrMsg();
                int at = m.indexOf("cluster ");
                how[0] = "listInstances answers " + e.getErrCode() + (at >= 0 ? " " + m.substring(at).replace("\"})", "").replace("\"}", "") : "")
                        + ", as Nacos does for an emptied cluster";
            }
        });
        return "P no longer listed (" + how[0] + ")";
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
}
