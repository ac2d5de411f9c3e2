package roster.compat.sca.consumer;

import org.springframework.boot.autoconfigure.SpringBootApplication;

/**
 * The consumer: a non-web application that finds the provider through Spring Cloud's
 * DiscoveryClient (backed by Nacos) and calls it over HTTP. It registers nothing itself
 * (spring.cloud.nacos.discovery.register-enabled=false).
 */
@SpringBootApplication
public class ConsumerApplication {
}
