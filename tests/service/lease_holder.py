"""A script that takes the bench's lease, brings VLOGIC up, says "live", and waits.

Run by the lease tests as a separate process, which they then kill or stop.
"""

import sys
import time

import interlock

client = interlock.connect(sys.argv[1], role="script", start=False, who="lease-holder")
lease = client.lease().acquire()
client.set_current_limit("VLOGIC", 0.3)
client.set_voltage("VLOGIC", 5.0)
client.output_on("VLOGIC")
print("live", flush=True)
time.sleep(120)
