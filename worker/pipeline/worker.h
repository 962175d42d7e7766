// Wires the stages together and runs the service lifecycle: start, READY, watchdog, SIGTERM drain.
#pragma once

#include "worker/config.h"

namespace hookq {

// Returns the process exit code. Installs the SIGTERM/SIGINT handlers: the first signal drains,
// a second SIGINT during the drain stops at once (unacked work stays in Redis).
int run_worker(const Config& cfg);

}  // namespace hookq
