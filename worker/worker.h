// Wires the stages together and runs the service lifecycle: start, READY, watchdog, SIGTERM drain.
#pragma once

#include "worker/config.h"

namespace hookq {

// Returns the process exit code. Expects SIGTERM/SIGINT to be blocked in every thread (main does
// it before anything starts) so that they are received here with sigtimedwait.
int run_worker(const Config& cfg);

}  // namespace hookq
