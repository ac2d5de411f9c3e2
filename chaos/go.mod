module github.com/roster-registry/roster/chaos

go 1.26.8

require github.com/roster-registry/roster v0.0.0-00010101000000-000000000000

require github.com/anishathalye/porcupine v1.3.1 // indirect

replace github.com/roster-registry/roster => ../
