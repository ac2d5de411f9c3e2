package udppush

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"strconv"
)

// gzipThreshold: Nacos gzips a push packet of 1 KiB or more, and clients gunzip whatever
// starts with the gzip magic 1F 8B.
const gzipThreshold = 1024

// quote turns the ServiceInfo JSON into the JSON string the packet's "data" carries.
// HTML escaping is off so the string reads as Nacos writes it; clients decode either.
func quote(info []byte) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(string(info)); err != nil {
		return nil, fmt.Errorf("udppush: quote data: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// EncodePacket builds the packet a subscriber receives for the ServiceInfo JSON info
// (the registry's PushData) with sequence number seq, or an error when info cannot be
// carried or the packet would exceed limit bytes. The push loop does the same with an
// encoder it reuses.
func EncodePacket(info []byte, seq int64, limit int) ([]byte, error) {
	quoted, err := quote(info)
	if err != nil {
		return nil, err
	}
	var e encoder
	return e.packet(quoted, seq, limit)
}

// encoder builds packets; it keeps one gzip writer for reuse and is not safe for
// concurrent use (only the loop goroutine encodes).
type encoder struct {
	gz *gzip.Writer
}

// packet returns {"type":"dom","data":<quoted>,"lastRefTime":<seq>}, gzipped from
// gzipThreshold bytes, or an error when the result exceeds limit bytes.
func (e *encoder) packet(quoted []byte, seq int64, limit int) ([]byte, error) {
	raw := make([]byte, 0, len(quoted)+64)
	raw = append(raw, `{"type":"dom","data":`...)
	raw = append(raw, quoted...)
	raw = append(raw, `,"lastRefTime":`...)
	raw = strconv.AppendInt(raw, seq, 10)
	raw = append(raw, '}')
	if len(raw) < gzipThreshold {
		if len(raw) > limit {
			return nil, fmt.Errorf("udppush: packet of %d bytes exceeds %d", len(raw), limit)
		}
		return raw, nil
	}
	var b bytes.Buffer
	if e.gz == nil {
		e.gz = gzip.NewWriter(&b)
	} else {
		e.gz.Reset(&b)
	}
	if _, err := e.gz.Write(raw); err != nil {
		return nil, fmt.Errorf("udppush: gzip packet: %w", err)
	}
	if err := e.gz.Close(); err != nil {
		return nil, fmt.Errorf("udppush: gzip packet: %w", err)
	}
	if b.Len() > limit {
		return nil, fmt.Errorf("udppush: packet of %d bytes (gzipped from %d) exceeds %d", b.Len(), len(raw), limit)
	}
	return b.Bytes(), nil
}
