"""compat program for nacos-sdk-python 0.1.x (HTTP v1 API; beats from its own HeartbeatTask)."""

import random
import threading
import time
from importlib.metadata import version as pkg_version

import harness as h
from harness import E_IP, P_IP, X_IP, PORT, CLUSTER

import nacos
from nacos.listener import SubscribeListener, Event

env = h.Env()
h.version("nacos-sdk-python " + pkg_version("nacos-sdk-python"))

client = nacos.NacosClient(
    server_addresses=env.addr,
    namespace=env.namespace or None,
    username=env.username or None,
    password=env.password or None,
    logDir=env.cache_dir,
)
client.set_options(
    failover_base=env.cache_dir + "/nacos-data/data",
    snapshot_base=env.cache_dir + "/nacos-data/snapshot",
)
beat_s = env.beat_ms / 1000.0
svc, group = env.service, env.group


psvc = env.p_service


def hosts(healthy_only=False, service=None):
    res = client.list_naming_instance(service or svc, group_name=group, healthy_only=healthy_only)
    return res.get("hosts") or []


def both(healthy_only=False):
    """E's and P's instances, from one list call or two when P has its own service."""
    hs = hosts(healthy_only)
    if psvc != svc:
        hs = hs + hosts(healthy_only, psvc)
    return hs


def find(hs, ip):
    for x in hs:
        if x.get("ip") == ip and int(x.get("port", 0)) == PORT:
            return x
    return None


def register_ephemeral():
    ok = client.add_naming_instance(
        svc, E_IP, PORT, cluster_name=CLUSTER, weight=1.0, metadata=env.e_metadata(),
        ephemeral=True, group_name=group, heartbeat_interval=beat_s)
    if not ok:
        raise RuntimeError("add_naming_instance returned False")
    e = h.until(lambda: find(hosts(), E_IP), 5)
    if not e:
        raise RuntimeError("E not listed after register")
    return "HTTP v1 register, client HeartbeatTask beats every %gs" % beat_s


def register_persistent():
    ok = client.add_naming_instance(
        psvc, P_IP, PORT, cluster_name=CLUSTER, weight=1.0, ephemeral=False, group_name=group)
    if not ok:
        raise RuntimeError("add_naming_instance returned False")
    return "ephemeral=false over HTTP v1"


def list_select():
    all_ = both()
    healthy = both(healthy_only=True)
    missing = [ip for ip in (E_IP, P_IP) if not find(all_, ip)]
    if missing:
        raise RuntimeError("list_naming_instance lacks %s (got %s)" % (missing, [x.get("ip") for x in all_]))
    missing = [ip for ip in (E_IP, P_IP) if not find(healthy, ip)]
    if missing:
        raise RuntimeError("healthy_only list lacks %s" % missing)
    one = random.choice(healthy)
    if one.get("ip") not in (E_IP, P_IP):
        raise RuntimeError("picked unexpected %s" % one.get("ip"))
    return ("list %d, healthy %d, selectOne %s (client has no select-one: random pick from its healthy list)"
            % (len(all_), len(healthy), one["ip"]))


def subscribe():
    seen = threading.Event()
    state = {}

    def on_event(event, slc):
        inst = slc.instance
        h.log.info("subscribe callback %s %s:%s", event, inst.get("ip"), inst.get("port"))
        if event in (Event.ADDED, Event.MODIFIED) and inst.get("ip") == X_IP and not seen.is_set():
            state["at"] = time.monotonic()
            seen.set()

    listener = SubscribeListener(fn=on_event, listener_name="compat")
    client.subscribe(listener, 1, service_name=svc, group_name=group)
    try:
        t0 = time.monotonic()
        ok = client.add_naming_instance(
            svc, X_IP, PORT, cluster_name=CLUSTER, weight=1.0, metadata=env.e_metadata(),
            ephemeral=True, group_name=group, heartbeat_interval=beat_s)
        if not ok:
            raise RuntimeError("register X returned False")
        if not seen.wait(15):
            raise RuntimeError("no callback with X within 15s")
        delay = state["at"] - t0
    finally:
        client.unsubscribe(svc)
        client.stop_subscribe()
        try:
            client.remove_naming_instance(svc, X_IP, PORT, cluster_name=CLUSTER, ephemeral=True, group_name=group)
        except Exception:
            h.log.exception("deregister X")
    return "poll (client polls /instance/list every 1s, no push): X seen %.1fs after register" % delay


def update():
    ok = client.modify_naming_instance(
        psvc, P_IP, PORT, cluster_name=CLUSTER, weight=2.5, metadata={"v": "2"},
        ephemeral=False, group_name=group)
    if not ok:
        raise RuntimeError("modify_naming_instance returned False")

    def check():
        p = find(hosts(service=psvc), P_IP)
        return p if p and float(p.get("weight", 0)) == 2.5 and (p.get("metadata") or {}).get("v") == "2" else None

    p = h.until(check, 5)
    if not p:
        raise RuntimeError("read back: %s" % find(hosts(service=psvc), P_IP))
    return "weight %g, metadata v=%s (modify_naming_instance, read back by list)" % (p["weight"], p["metadata"]["v"])


def deregister():
    ok = client.remove_naming_instance(psvc, P_IP, PORT, cluster_name=CLUSTER, ephemeral=False, group_name=group)
    if not ok:
        raise RuntimeError("remove_naming_instance returned False")
    gone = h.until(lambda: find(hosts(service=psvc), P_IP) is None, 5)
    if not gone:
        raise RuntimeError("P still listed")
    return "P no longer listed"


h.step("register_ephemeral", register_ephemeral)
h.wait("keepalive")
h.step("register_persistent", register_persistent)
h.step("list_select", list_select)
h.step("subscribe", subscribe)
h.step("update", update)
h.step("deregister", deregister)
h.wait("restart")
h.wait("stop")
h.block_forever()
