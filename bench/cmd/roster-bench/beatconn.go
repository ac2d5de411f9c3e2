package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// beatConn sends light beats as plain HTTP/1.1 requests over one keep-alive
// connection. net/http's client costs about as much CPU per request as the server
// spends answering a beat; on a 2-core machine that halves the beat rate the server is
// offered. Writing the request by hand and reading only the status line, the
// Content-Length and the body leaves the CPU to the server. It is still the same wire
// request a Nacos client sends.
type beatConn struct {
	addr string
	conn net.Conn
	rd   *bufio.Reader
	buf  []byte
}

func newBeatConn(addr string) *beatConn { return &beatConn{addr: addr} }

func (b *beatConn) close() {
	if b.conn != nil {
		b.conn.Close()
		b.conn = nil
	}
}

// beat sends PUT /nacos/v1/ns/instance/beat with serviceName, ip and port as a form
// body and checks for a 200 answer with code 10200.
func (b *beatConn) beat(service, ip string, port int) error {
	if b.conn == nil {
		c, err := net.DialTimeout("tcp", b.addr, 5*time.Second)
		if err != nil {
			return err
		}
		b.conn, b.rd = c, bufio.NewReaderSize(c, 4096)
	}
	err := b.roundTrip(service, ip, port)
	if err != nil {
		b.close() // the connection's state is unknown; the next beat dials again
	}
	return err
}

func (b *beatConn) roundTrip(service, ip string, port int) error {
	const path = "/nacos/v1/ns/instance/beat"
	form := b.buf[:0]
	form = append(form, "serviceName="...)
	form = append(form, url.QueryEscape(service)...)
	form = append(form, "&ip="...)
	form = append(form, ip...)
	form = append(form, "&port="...)
	form = strconv.AppendInt(form, int64(port), 10)
	formLen := len(form)
	req := append(form, "PUT "+path+" HTTP/1.1\r\nHost: "...)
	req = append(req, b.addr...)
	req = append(req, "\r\nUser-Agent: roster-bench\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: "...)
	req = strconv.AppendInt(req, int64(formLen), 10)
	req = append(req, "\r\n\r\n"...)
	req = append(req, form...)
	b.buf = req
	wire := req[formLen:] // the request line, headers and then the form again

	if err := b.conn.SetDeadline(time.Now().Add(requestTimeout)); err != nil {
		return err
	}
	if _, err := b.conn.Write(wire); err != nil {
		return err
	}
	status, err := b.rd.ReadSlice('\n')
	if err != nil {
		return err
	}
	ok := bytes.HasPrefix(status, []byte("HTTP/1.1 200 "))
	length, closeAfter := -1, false
	for {
		line, err := b.rd.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found {
			return fmt.Errorf("PUT %s: bad header line %q", path, line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return fmt.Errorf("PUT %s: bad Content-Length %q", path, value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return fmt.Errorf("PUT %s: unexpected Transfer-Encoding %q", path, value)
		case bytes.EqualFold(name, []byte("Connection")) && bytes.EqualFold(value, []byte("close")):
			closeAfter = true
		}
	}
	if length < 0 {
		return fmt.Errorf("PUT %s: answer without Content-Length", path)
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(b.rd, body); err != nil {
		return err
	}
	if closeAfter {
		b.close()
	}
	if !ok {
		return &httpError{"PUT", path, statusCode(status), string(body)}
	}
	if !bytes.Contains(body, []byte(`"code":10200`)) {
		return &httpError{"PUT", path, 200, string(body)}
	}
	return nil
}

// statusCode reads the code from an HTTP/1.1 status line, 0 if there is none.
func statusCode(line []byte) int {
	f := bytes.Fields(line)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(string(f[1]))
	return n
}
