module example.invalid/waypost/examples/fleet

go 1.19
