# Roster's build. `make run` starts one node on the embedded default; `make test` runs
# every test (lint first, then the unit and integration tests under -race, the fuzz
# smoke runs, the end-to-end tests against real Nacos clients, and the short chaos run).

GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X main.version=$(VERSION)
BIN         := bin/roster
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.0
# A count, not a duration: a timed -fuzztime can end mid-minimisation and report
# "context deadline exceeded" as a failure.
FUZZTIME    ?= 40000x
# FuzzWritePaths runs a whole node and checks every accepted request end to end (list,
# both pushes, a Distro batch, a snapshot): half the count keeps it near a minute.
FUZZTIME_NODE ?= 20000x

# Health probes of persistent instances dial loopback only on this machine: the local
# targets and every test pass --health-check-cidrs 127.0.0.0/8, and any roster server a
# test starts by other means inherits it from the environment.
export ROSTER_HEALTH_CHECK_CIDRS := 127.0.0.0/8

.PHONY: all build run cluster bench bench-quick test test-rnacos unit fuzz e2e console-test console-screenshots compat compat-deps lint fmt clean proto packaging-check chaos chaos-quick soak

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/roster

# A single node on 127.0.0.1:8848 (HTTP) and 127.0.0.1:7848 (Raft), data in ./roster-data.
run: build
	./$(BIN) server --health-check-cidrs 127.0.0.0/8

# Three local nodes on loopback (HTTP 8848-8850, Raft 7848-7850, data ./roster-cluster/nN);
# Ctrl-C stops them all. They share the cluster key roster-cluster/cluster.key, made once.
cluster: build
	@mkdir -p roster-cluster; \
	key=roster-cluster/cluster.key; \
	if [ ! -s $$key ]; then (umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > $$key); fi; \
	join=127.0.0.1:8848,127.0.0.1:8849,127.0.0.1:8850; \
	trap 'kill $$pids 2>/dev/null; wait' INT TERM EXIT; \
	for i in 0 1 2; do \
	  ./$(BIN) server --node-id n$$((i+1)) --http-addr 127.0.0.1:$$((8848+i)) --raft-addr 127.0.0.1:$$((7848+i)) \
	    --data-dir roster-cluster/n$$((i+1)) --bootstrap-expect 3 --join $$join --cluster-key-file $$key \
	    --health-check-cidrs 127.0.0.0/8 & pids="$$pids $$!"; \
	done; \
	wait

# Load generator against real roster processes on loopback. It is a module of its own
# (bench/), so that the reference and peer clients it links stay out of the server's go.mod.
# `make bench` installs the peers first (bench/peers.sh: r-nacos from crates.io, built
# once into ~/.cache/roster-bench; Debian's etcd-server and zookeeper). BENCH_ARGS adds
# flags, e.g. BENCH_ARGS="--duration 5s --json bench.json".
BENCH_ARGS ?=
bench: build
	cd bench && $(GO) build -o ../bin/roster-bench ./cmd/roster-bench
	bash bench/peers.sh
	./bin/roster-bench all --roster $(BIN) $(BENCH_ARGS)

# A smoke test (part of make test): every workload briefly, once, peers skipped; it
# checks only that it runs and that every row of the table is printed.
bench-quick: build
	cd bench && $(GO) build -o ../bin/roster-bench ./cmd/roster-bench
	./bin/roster-bench all --quick --roster $(BIN) > bin/bench-quick.txt
	@cat bin/bench-quick.txt
	@./bin/roster-bench rows | while IFS= read -r row; do \
	  grep -qF -- "$$row" bin/bench-quick.txt || { echo "bench-quick: row missing: $$row"; exit 1; }; \
	done

test: lint packaging-check unit fuzz e2e compat bench-quick chaos-quick

# Offline validators of the deployment files in packaging/ (no Docker daemon, no
# Kubernetes cluster): systemd-analyze verify, docker-compose config, kubernetes-validate
# (pinned; packaging/tools.sh installs them), and consistency checks between them. The
# Dockerfile, the entrypoint's mapping and sd_notify are tested by go test ./packaging.
packaging-check: build
	bash packaging/check.sh

# roster import nacos against r-nacos, an independent Nacos-protocol server (Rust). It is
# not in make test: bench/rnacos.sh builds r-nacos from crates.io once (cargo install
# --locked: 42 min wall, 17 min CPU on this 2-core machine), into the cache make bench shares. The import
# from a Roster source runs in make test (unit).
test-rnacos:
	@bin="$$(bash bench/rnacos.sh)"; \
	if [ -z "$$bin" ]; then echo "test-rnacos: r-nacos could not be built (see above)"; exit 1; fi; \
	ROSTER_RNACOS="$$bin" $(GO) test -race -count=1 -timeout 10m -run RNacos ./cmd/roster

unit:
	$(GO) test -race -count=1 -timeout 10m ./...

# Short fuzz runs of every decoder that reads client input, seeded from testdata, and of
# every client write path of a whole node (FuzzWritePaths: whatever is accepted can be
# listed, pushed, replicated and snapshotted; whatever is refused changes nothing).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseMetadata$$' -fuzztime $(FUZZTIME) ./naming
	$(GO) test -run '^$$' -fuzz '^FuzzParams$$' -fuzztime $(FUZZTIME) ./api
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./fsm
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeEnvelope$$' -fuzztime $(FUZZTIME) ./grpcapi
	$(GO) test -run '^$$' -fuzz '^FuzzWritePaths$$' -fuzztime $(FUZZTIME_NODE) ./server

# End-to-end tests with the real nacos-sdk-go v1.1.4 against real roster processes.
# e2e/prometheus.sh first installs Debian's prometheus (if missing) for the test of a
# real Prometheus discovering its targets through Roster;
# e2e/chromium.sh installs Debian's chromium (if missing) for the tests that drive the
# web console in a headless browser; their screenshots land in bin/e2e-artifacts.
E2E_ARTIFACTS := $(CURDIR)/bin/e2e-artifacts
e2e:
	bash e2e/prometheus.sh
	bash e2e/chromium.sh
	@mkdir -p $(E2E_ARTIFACTS)
	cd e2e && $(GO) test -race -count=1 -timeout 10m -artifacts -outputdir $(E2E_ARTIFACTS) ./...

# The browser tests of the web console alone, and the screenshots in docs/console/ that
# the README shows, taken from their run.
console-test:
	bash e2e/chromium.sh
	@rm -rf $(E2E_ARTIFACTS)/console && mkdir -p $(E2E_ARTIFACTS)/console
	cd e2e && $(GO) test -count=1 -run '^TestConsole' -artifacts -outputdir $(E2E_ARTIFACTS)/console .

console-screenshots: console-test
	@mkdir -p docs/console
	@for f in $$(find $(E2E_ARTIFACTS)/console -name '*.png' ! -name failed.png); do cp "$$f" docs/console/; done
	@ls -l docs/console

# The chaos suite (chaos/README.md): RELIABILITY.md's R1–R14 against real roster processes
# with faults injected (per-link proxies, SIGKILL/SIGSTOP, a full tmpfs, damaged files, a
# stepped wall clock). chaos-quick (part of make test) runs each once at small sizes;
# `make chaos` runs the full sizes CHAOS_RUNS times and rewrites chaos/RESULTS.md;
# `make soak` is R15 (2 h, not in CI). CHAOS_ARGS adds flags, e.g. -seed N to replay.
CHAOS_RUNS ?= 20
CHAOS_ARGS ?=
SOAK_TIME  ?= 2h
# CHAOS_QUICK_SKIP is a `go test -skip` pattern of scenarios chaos-quick leaves out
# (empty: none), e.g. CHAOS_QUICK_SKIP='^TestR5Pause$$' while a scenario has an open bug;
# `make chaos` runs every scenario regardless.
CHAOS_QUICK_SKIP ?=

chaos-quick:
	cd chaos && $(GO) test -count=1 -timeout 15m $(if $(CHAOS_QUICK_SKIP),-skip '$(CHAOS_QUICK_SKIP)') . -args $(CHAOS_ARGS)

chaos:
	cd chaos && $(GO) test -count=1 -timeout 0 -v . -args -full -runs $(CHAOS_RUNS) -results RESULTS.md $(CHAOS_ARGS)

soak:
	cd chaos && $(GO) test -count=1 -timeout 0 -v -run TestR15Soak . -args -soak $(SOAK_TIME) -results SOAK.md $(CHAOS_ARGS)

# The compatibility matrix (compat/README.md): every client program against its own
# roster process, once with auth off and once with --auth (a user per client, plus the
# refused cell); rewrites compat/RESULTS.md with both tables. compat-deps builds the
# client programs.
COMPAT_BUILDS   := compat/go/build.sh compat/java/build.sh compat/python/build.sh compat/node/build.sh
COMPAT_PARALLEL ?= 4

compat-deps:
	@for s in $(COMPAT_BUILDS); do \
	  if [ ! -f "$$s" ]; then echo "compat-deps: $$s is missing"; exit 1; fi; \
	  echo "== $$s"; bash "$$s" || { echo "compat-deps: $$s failed"; exit 1; }; \
	done

compat: build compat-deps
	cd compat && $(GO) test -count=1 ./...
	cd compat && $(GO) run ./driver --roster ../$(BIN) --auth both --parallel $(COMPAT_PARALLEL) --out RESULTS.md

# go.mod must say what the code imports (mod tidy -diff), and packages import only what
# DESIGN.md's "Packages and who may import whom" allows (internal/archtest).
lint:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) mod tidy -diff
	cd e2e && $(GO) mod tidy -diff
	cd compat && $(GO) mod tidy -diff
	cd bench && $(GO) mod tidy -diff
	cd chaos && $(GO) mod tidy -diff
	$(GO) vet ./...
	cd e2e && $(GO) vet ./...
	cd compat && $(GO) vet ./...
	cd bench && $(GO) vet ./...
	cd chaos && $(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	cd e2e && $(GO) run $(STATICCHECK) ./...
	cd compat && $(GO) run $(STATICCHECK) ./...
	cd chaos && $(GO) run $(STATICCHECK) ./...
	$(GO) test -count=1 ./internal/archtest

fmt:
	gofmt -w $$(git ls-files '*.go')

# Regenerates grpcapi/proto's Go code (committed; nothing else needs protoc). protoc
# comes from Debian's protobuf-compiler; the two plugins are pinned and built into bin/.
proto:
	@command -v protoc >/dev/null || { apt-get update && apt-get install -y protobuf-compiler; }
	GOBIN=$(CURDIR)/bin $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(CURDIR)/bin $(GO) install $(PROTOC_GEN_GO_GRPC)
	PATH="$(CURDIR)/bin:$$PATH" protoc -I grpcapi/proto \
		--go_out=grpcapi/proto --go_opt=paths=source_relative \
		--go-grpc_out=grpcapi/proto --go-grpc_opt=paths=source_relative \
		grpcapi/proto/nacos_grpc_service.proto

clean:
	rm -rf bin
