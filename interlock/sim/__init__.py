"""The simulated bench: instruments, relay board and DUT behind real transports."""
