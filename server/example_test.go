package server_test

import (
	"context"
	"log"
	"os/signal"
	"syscall"

	"github.com/roster-registry/roster/server"
)

// A program that embeds one node runs it until it is told to stop or its HTTP port
// fails, as `roster server` does.
func Example() {
	cfg := server.DefaultConfig()
	cfg.DataDir = "/var/lib/roster"
	srv, err := server.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	srv.Start()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	ready := srv.Ready()
	for running := true; running; {
		select {
		case <-ready:
			log.Printf("node %s serves on %s", srv.NodeID(), srv.HTTPAddr())
			ready = nil
		case err := <-srv.Err():
			log.Print(err)
			running = false
		case <-ctx.Done():
			running = false
		}
	}
	if err := srv.Close(); err != nil {
		log.Print(err)
	}
}
