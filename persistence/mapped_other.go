//go:build !linux

package persistence

func releaseMapped(uintptr, int64) {}
