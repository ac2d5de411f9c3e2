// Package udppush pushes service changes to Nacos 1.x clients over UDP (PROTOCOL.md §5):
// nacos-sdk-go v1, the Java 1.x client and the Node.js client, which subscribe by calling
// /instance/list with a udpPort.
//
// A Pusher owns one UDP socket and two goroutines: a reader that matches acks, and a loop
// that coalesces changes, sends pushes, resends unacknowledged ones once and expires
// subscribers. ServiceChanged only marks a service pending and signals the loop, so callers
// (the FSM apply goroutine, the Distro expiry ticker) are never held up by a slow DataFunc
// or the network.
//
// The pusher is not a reflector: it sends only to addresses given to Subscribe (which the
// caller takes from the TCP peer), and incoming packets are only matched against pushes
// in flight, never answered. Packets are size-capped by Config.MaxPacket; nacos-sdk-go v1
// reads at most 4024 bytes, so larger pushes reach it truncated and it falls back to
// polling, as it does with Nacos.
package udppush
