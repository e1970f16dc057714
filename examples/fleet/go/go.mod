module example.invalid/waypost/examples/fleet

go 1.19

require example.invalid/waypost v0.0.0

replace example.invalid/waypost => ../../../bindings-c/go
