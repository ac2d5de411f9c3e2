module github.com/roster-registry/roster/chaos

go 1.26.8

require github.com/anishathalye/porcupine v1.3.1

replace github.com/roster-registry/roster => ../
