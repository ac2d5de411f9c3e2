package roster.compat.dubbo;

/** The service the provider exports and the consumer calls over Dubbo's own protocol. */
public interface Greeter {
    /** Answers with the name of the provider that took the call. */
    String hello(String who);
}
