"""Board entry point: run the firmware loop on the real hardware HAL.

MicroPython runs this file at boot. The simulator runs it unchanged, with its
own ``rb_hal`` standing in for the hardware one.
"""

import rb_hal
import rb_loop

board = rb_hal.Board()
try:
    rb_loop.run(board)
finally:
    # Whatever ended the loop (a bug, a stop), the relays open before the
    # exception goes anywhere; the unfed hardware watchdog then resets the MCU.
    board.write_relays(0)
