"""compat program for the newest nacos-sdk-python (its v2 asyncio API over Nacos 2.x gRPC)."""

import asyncio
import logging
import random
import time
from importlib.metadata import version as pkg_version

import harness as h
from harness import E_IP, P_IP, X_IP, PORT, CLUSTER

from v2.nacos import (ClientConfigBuilder, NacosNamingService, RegisterInstanceParam,
                      DeregisterInstanceParam, ListInstanceParam, SubscribeServiceParam)

env = h.Env()
h.version("nacos-sdk-python " + pkg_version("nacos-sdk-python"))
svc, psvc, group = env.service, env.p_service, env.group


class PushLog(logging.Handler):
    """Counts the NotifySubscriberRequest pushes the SDK logs on its naming logger."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.pushes = []

    def emit(self, record):
        msg = record.getMessage()
        if msg.startswith("received naming push service info"):
            self.pushes.append((time.monotonic(), msg))


push_log = PushLog()


def config(sub):
    b = (ClientConfigBuilder()
         .server_address(env.addr)
         .log_dir(env.cache_dir + "/log-" + sub)
         .cache_dir(env.cache_dir + "/cache-" + sub)
         .load_cache_at_start(False)
         .log_level(logging.INFO))
    if env.namespace:
        b = b.namespace_id(env.namespace)
    if env.username:
        b = b.username(env.username)
    if env.password:
        b = b.password(env.password)
    cfg = b.build()
    # removals that empty a service reach callbacks and list calls too
    cfg.set_update_cache_when_empty(True)
    return cfg


def find(hs, ip):
    for x in hs:
        if x.ip == ip and x.port == PORT:
            return x
    return None


async def poll(pred, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = await pred()
        if v or time.monotonic() >= deadline:
            return v
        await asyncio.sleep(interval)


async def step(name, fn):
    t0 = time.monotonic()
    try:
        detail, ok = await fn(), True
    except Exception as e:
        h.log.exception("step %s failed", name)
        detail, ok = "%s: %s" % (type(e).__name__, e), False
    line = {"step": name, "ok": ok, "ms": int((time.monotonic() - t0) * 1000)}
    if detail:
        line["detail"] = str(detail)
    h.emit(line)


async def wait(name):
    return await asyncio.to_thread(h.wait, name)


async def main():
    naming = await NacosNamingService.create_naming_service(config("main"))
    sdk_log = logging.getLogger("naming")  # the SDK logs to files under log_dir only
    sdk_log.addHandler(push_log)
    warnings = logging.StreamHandler()
    warnings.setLevel(logging.WARNING)
    warnings.setFormatter(logging.Formatter("%(asctime)s %(levelname)s naming %(message)s"))
    sdk_log.addHandler(warnings)

    async def hosts(service=svc, healthy_only=None):
        return await naming.list_instances(ListInstanceParam(
            service_name=service, group_name=group, healthy_only=healthy_only))

    async def both(healthy_only=None):
        hs = await hosts(svc, healthy_only)
        if psvc != svc:
            hs = hs + await hosts(psvc, healthy_only)
        return hs

    async def register_ephemeral():
        ok = await naming.register_instance(RegisterInstanceParam(
            ip=E_IP, port=PORT, weight=1.0, metadata=env.e_metadata(), cluster_name=CLUSTER,
            service_name=svc, group_name=group, ephemeral=True))
        if not ok:
            raise RuntimeError("register_instance returned False")
        return "gRPC InstanceRequest; kept by the connection (health checks, redo on reconnect)"

    async def register_persistent():
        ok = await naming.register_instance(RegisterInstanceParam(
            ip=P_IP, port=PORT, weight=1.0, cluster_name=CLUSTER,
            service_name=psvc, group_name=group, ephemeral=False))
        if not ok:
            raise RuntimeError("register_instance returned False")
        return "ephemeral=false: gRPC PersistentInstanceRequest"

    async def list_select():
        async def complete():
            a = await both()
            return a if find(a, E_IP) and find(a, P_IP) else None

        all_ = await poll(complete, 5) or await both()
        missing = [ip for ip in (E_IP, P_IP) if not find(all_, ip)]
        if missing:
            raise RuntimeError("list_instances lacks %s (got %s)" % (missing, [x.ip for x in all_]))
        healthy = await both(healthy_only=True)
        missing = [ip for ip in (E_IP, P_IP) if not find(healthy, ip)]
        if missing:
            raise RuntimeError("list_instances(healthy_only=True) lacks %s" % missing)
        one = random.choice(healthy)
        return ("list %d, healthy %d, selectOne %s (client has no select-one: random pick from its healthy list)"
                % (len(all_), len(healthy), one.ip))

    async def subscribe():
        seen = asyncio.Event()
        state = {}

        async def callback(instances):
            h.log.info("subscribe callback: %s", [i.ip for i in instances])
            if find(instances, X_IP) and not seen.is_set():
                state["at"] = time.monotonic()
                seen.set()

        param = SubscribeServiceParam(service_name=svc, group_name=group, subscribe_callback=callback)
        await naming.subscribe(param)
        # X comes from a second client: a gRPC connection holds one instance per service,
        # so registering X on the first one would replace E.
        other = await NacosNamingService.create_naming_service(config("x"))
        try:
            pushes_before = len(push_log.pushes)
            t0 = time.monotonic()
            ok = await other.register_instance(RegisterInstanceParam(
                ip=X_IP, port=PORT, weight=1.0, cluster_name=CLUSTER,
                service_name=svc, group_name=group, ephemeral=True))
            if not ok:
                raise RuntimeError("register X returned False")
            try:
                await asyncio.wait_for(seen.wait(), 15)
            except asyncio.TimeoutError:
                raise RuntimeError("no callback with X within 15s")
            delay = state["at"] - t0
            pushed = [p for p in push_log.pushes[pushes_before:] if p[0] <= state["at"] and X_IP in p[1]]
            how = "push (grpc)" if pushed else "poll"
            await other.deregister_instance(DeregisterInstanceParam(
                ip=X_IP, port=PORT, cluster_name=CLUSTER, service_name=svc, group_name=group, ephemeral=True))
        finally:
            await naming.unsubscribe(param)
            await other.shutdown()
        return "%s: X seen %.0f ms after register" % (how, delay * 1000)

    async def update():
        ok = await naming.update_instance(RegisterInstanceParam(
            ip=P_IP, port=PORT, weight=2.5, metadata={"v": "2"}, cluster_name=CLUSTER,
            service_name=psvc, group_name=group, ephemeral=False))
        if not ok:
            raise RuntimeError("update_instance returned False")

        async def check():
            p = find(await hosts(psvc), P_IP)
            return p if p and p.weight == 2.5 and p.metadata.get("v") == "2" else None

        p = await poll(check, 5)
        if not p:
            raise RuntimeError("read back: %s" % find(await hosts(psvc), P_IP))
        return "weight %g, metadata v=%s (update_instance: PersistentInstanceRequest re-register)" % (
            p.weight, p.metadata["v"])

    async def deregister():
        ok = await naming.deregister_instance(DeregisterInstanceParam(
            ip=P_IP, port=PORT, cluster_name=CLUSTER, service_name=psvc, group_name=group, ephemeral=False))
        if not ok:
            raise RuntimeError("deregister_instance returned False")

        async def gone():
            return find(await hosts(psvc), P_IP) is None

        if not await poll(gone, 5):
            raise RuntimeError("P still listed")
        return "gRPC PersistentInstanceRequest deregister; P no longer listed"

    await step("register_ephemeral", register_ephemeral)
    await wait("keepalive")
    await step("register_persistent", register_persistent)
    await step("list_select", list_select)
    await step("subscribe", subscribe)
    await step("update", update)
    await step("deregister", deregister)
    await wait("restart")
    await wait("stop")
    await asyncio.to_thread(h.block_forever)


asyncio.run(main())
