package roster.compat;

import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.LocalTime;
import java.time.format.DateTimeFormatter;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Properties;

/**
 * The client side of the driver ↔ client contract of compat/README.md: the environment,
 * the JSON lines on stdout and the driver's answers on stdin.
 *
 * <p>Only contract lines reach the real stdout: {@link #init()} points {@code System.out} at
 * stderr, so whatever a library prints there (banners, console log appenders) lands in the
 * program's log.
 */
public final class Contract {
    public static final String EPHEMERAL_IP = "10.9.0.1";
    public static final String PERSISTENT_IP = "10.9.0.2";
    public static final String EXTRA_IP = "10.9.0.3";
    public static final int PORT = 8080;
    public static final String CLUSTER = "DEFAULT";

    public final String serverAddr;
    public final String namespace;
    public final String group;
    public final String service;
    public final String persistentService;
    public final long heartbeatIntervalMs;
    public final long heartbeatTimeoutMs;
    public final long deleteTimeoutMs;
    public final String username;
    public final String password;
    public final String cacheDir;

    private final PrintStream out;
    private final BufferedReader in;

    /** A step's body: returns the detail or throws. */
    public interface Body {
        String run() throws Exception;
    }

    /** A check retried by {@link #eventually}: throws while the condition does not hold. */
    public interface Check {
        void run() throws Exception;
    }

    private Contract(PrintStream out) {
        this.out = out;
        this.in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        serverAddr = need("ROSTER_SERVER_ADDR");
        if (!serverAddr.matches("[^:]+:\\d+")) {
            fatal("ROSTER_SERVER_ADDR " + quote(serverAddr) + " is not host:port");
        }
        namespace = env("ROSTER_NAMESPACE");
        String g = env("ROSTER_GROUP");
        group = g.isEmpty() ? "DEFAULT_GROUP" : g;
        service = need("ROSTER_SERVICE");
        String ps = env("ROSTER_PERSISTENT_SERVICE");
        persistentService = ps.isEmpty() ? service : ps;
        heartbeatIntervalMs = millis("ROSTER_HEARTBEAT_INTERVAL_MS");
        heartbeatTimeoutMs = millis("ROSTER_HEARTBEAT_TIMEOUT_MS");
        deleteTimeoutMs = millis("ROSTER_DELETE_TIMEOUT_MS");
        username = env("ROSTER_USERNAME");
        password = env("ROSTER_PASSWORD");
        String dir = env("ROSTER_CACHE_DIR");
        cacheDir = dir.isEmpty() ? System.getProperty("java.io.tmpdir") + "/roster-compat-java" : dir;
    }

    /**
     * Reads the environment and takes stdout for the contract; every later {@code System.out}
     * write goes to stderr.
     */
    public static Contract init() {
        PrintStream real = new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
        System.setOut(System.err);
        return new Contract(real);
    }

    /**
     * Points a Nacos client's logs, snapshots and naming cache into {@link #cacheDir}. Call it
     * before any client class is loaded: the client reads these once.
     */
    public void nacosClientDirs() {
        System.setProperty("JM.LOG.PATH", cacheDir + "/logs");
        System.setProperty("JM.SNAPSHOT.PATH", cacheDir);
        System.setProperty("com.alibaba.nacos.naming.cache.dir", cacheDir + "/naming");
    }

    /**
     * A Nacos client's configuration for this run: the server, the namespace and credentials
     * when given, and no cached instances at start. The keys are the values of the client's
     * PropertyKeyConst (SERVER_ADDR, NAMESPACE, USERNAME, PASSWORD,
     * NAMING_LOAD_CACHE_AT_START), the same in 1.4, 2.x and 3.x; this module depends on no
     * client version.
     */
    public Properties nacosProperties() {
        Properties p = new Properties();
        p.setProperty("serverAddr", serverAddr);
        if (!namespace.isEmpty()) {
            p.setProperty("namespace", namespace);
        }
        if (!username.isEmpty()) {
            p.setProperty("username", username);
            p.setProperty("password", password);
        }
        p.setProperty("namingLoadCacheAtStart", "false");
        return p;
    }

    /** The host part of ROSTER_SERVER_ADDR. */
    public String host() {
        return serverAddr.substring(0, serverAddr.lastIndexOf(':'));
    }

    /** The port part of ROSTER_SERVER_ADDR (HTTP; gRPC is this + 1000). */
    public int port() {
        return Integer.parseInt(serverAddr.substring(serverAddr.lastIndexOf(':') + 1));
    }

    /** E's metadata: role plus the preserved timing keys of the server's short timings. */
    public Map<String, String> ephemeralMetadata() {
        Map<String, String> md = timings();
        md.put("role", "ephemeral");
        return md;
    }

    public Map<String, String> timings() {
        Map<String, String> md = new LinkedHashMap<>();
        md.put("preserved.heart.beat.interval", Long.toString(heartbeatIntervalMs));
        md.put("preserved.heart.beat.timeout", Long.toString(heartbeatTimeoutMs));
        md.put("preserved.ip.delete.timeout", Long.toString(deleteTimeoutMs));
        return md;
    }

    public void version(String text) {
        emit("{\"version\":" + quote(text) + "}");
    }

    /** Runs body, timing it, and reports the step; a failure is reported, never thrown. */
    public void step(String name, Body body) {
        long start = System.nanoTime();
        String detail;
        boolean ok;
        try {
            detail = body.run();
            ok = true;
        } catch (Throwable t) {
            ok = false;
            detail = describe(t);
            log("step " + name + " failed: " + detail);
            t.printStackTrace(System.err);
        }
        long ms = (System.nanoTime() - start) / 1_000_000;
        if (ok) {
            log("step " + name + ": " + detail);
        }
        StringBuilder b = new StringBuilder("{\"step\":").append(quote(name))
                .append(",\"ok\":").append(ok).append(",\"ms\":").append(ms);
        if (detail != null && !detail.isEmpty()) {
            b.append(",\"detail\":").append(quote(detail));
        }
        emit(b.append('}').toString());
    }

    /**
     * Reports a step the client cannot take (it has no such operation); the row shows
     * "n/a" and the reason instead of a result.
     */
    public void notApplicable(String name, String reason) {
        log("step " + name + ": n/a: " + reason);
        emit("{\"step\":" + quote(name) + ",\"ok\":true,\"na\":true,\"ms\":0,\"detail\":" + quote(reason) + "}");
    }

    /**
     * Tells the driver where E is when the client registers its own address instead of
     * 10.9.0.1:8080 (the driver's keepalive, restart and stop cells watch that address).
     */
    public void ephemeralAt(String ip, int port) {
        emit("{\"ephemeral\":" + quote(ip + ":" + port) + "}");
    }

    /** Asks the driver for a wait and returns its answer line. */
    public String waitFor(String name) {
        emit("{\"wait\":" + quote(name) + "}");
        try {
            String line = in.readLine();
            if (line == null) {
                fatal("wait " + name + ": no answer from the driver (stdin closed)");
            }
            log("wait " + name + ": " + line.trim());
            return line;
        } catch (IOException e) {
            fatal("wait " + name + ": " + e);
            return null;
        }
    }

    /**
     * Asks for the stop and blocks reading stdin until the driver kills the program; if the
     * driver closes stdin instead, the program halts at once (no shutdown hooks: as a kill).
     */
    public void waitStop() {
        emit("{\"wait\":\"stop\"}");
        try {
            while (in.readLine() != null) {
                // Nothing is expected here.
            }
        } catch (IOException ignored) {
            // Same as end of input.
        }
        Runtime.getRuntime().halt(0);
    }

    /** Thrown by a {@link Check} to stop {@link #eventually} at once. */
    public static final class GiveUp extends RuntimeException {
        public GiveUp(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /**
     * Calls check until it passes or timeoutMs passes; then throws its last failure. A
     * {@link GiveUp} ends it at once.
     */
    public static void eventually(long timeoutMs, Check check) throws Exception {
        long deadline = System.currentTimeMillis() + timeoutMs;
        String last = null;
        while (true) {
            try {
                check.run();
                return;
            } catch (GiveUp e) {
                throw e;
            } catch (Exception e) {
                String d = describe(e);
                if (!d.equals(last)) {
                    log("not yet: " + d);
                    last = d;
                }
                if (System.currentTimeMillis() > deadline) {
                    throw new Exception("after " + timeoutMs + " ms: " + describe(e), e);
                }
            }
            Thread.sleep(50);
        }
    }

    public static void log(String msg) {
        System.err.println(LocalTime.now().format(DateTimeFormatter.ofPattern("HH:mm:ss.SSS")) + " [compat] " + msg);
    }

    public static void fatal(String msg) {
        System.err.println("compat: " + msg);
        System.err.flush();
        Runtime.getRuntime().halt(1);
    }

    public static String describe(Throwable t) {
        String m = t.getMessage();
        String s = (m == null || m.isBlank()) ? t.getClass().getSimpleName() : m;
        Throwable c = t.getCause();
        if (c != null && c != t && (m == null || c.getMessage() == null || !m.contains(c.getMessage()))) {
            s += " (" + describe(c) + ")";
        }
        return s.replace('\n', ' ');
    }

    private synchronized void emit(String line) {
        out.print(line + "\n");
        out.flush();
    }

    private static String env(String name) {
        String v = System.getenv(name);
        return v == null ? "" : v.trim();
    }

    private static String need(String name) {
        String v = env(name);
        if (v.isEmpty()) {
            fatal(name + " is not set (run this program through compat/driver)");
        }
        return v;
    }

    private static long millis(String name) {
        String v = need(name);
        try {
            long n = Long.parseLong(v);
            if (n > 0) {
                return n;
            }
        } catch (NumberFormatException ignored) {
            // reported below
        }
        fatal(name + "=" + quote(v) + " is not a positive number of milliseconds");
        return 0;
    }

    /** A JSON string literal. */
    public static String quote(String s) {
        StringBuilder b = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }
}
