module github.com/roster-registry/roster/compat

go 1.26.8
