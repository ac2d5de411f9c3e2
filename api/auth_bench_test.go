package api

import (
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
)

// BenchmarkInstanceList measures GET /nacos/v1/ns/instance/list on a service with 10
// instances, over real HTTP on loopback, with auth off and with auth on (a token in the
// accessToken parameter, as the Go and Java clients send it), in one run:
//
//	go test -run '^$' -bench InstanceList -benchtime 3s ./api
func BenchmarkInstanceList(b *testing.B) {
	for _, authOn := range []bool{false, true} {
		name := "auth=off"
		if authOn {
			name = "auth=on"
		}
		b.Run(name, func(b *testing.B) {
			t := &testing.T{}
			s := newStack(t, stackOptions{auth: authOn})
			s.t = t
			token := ""
			if authOn {
				token = s.bootstrapACL()
			}
			for i := 0; i < 10; i++ {
				v := vals("serviceName", "svc", "ip", "10.0.0."+strconv.Itoa(i+1), "port", "80", "ephemeral", "false")
				if authOn {
					v = withToken(v, token)
				}
				if a := s.do(http.MethodPost, "/nacos/v1/ns/instance", v); a.status != 200 {
					b.Fatalf("register: %d %s", a.status, a.body)
				}
			}
			url := s.srv.URL + "/nacos/v1/ns/instance/list?serviceName=svc&namespaceId=public"
			if authOn {
				url += "&accessToken=" + token
			}
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			var failed atomic.Int64
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Get(url)
					if err != nil {
						failed.Add(1)
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						failed.Add(1)
					}
				}
			})
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d requests failed", n)
			}
		})
	}
}
