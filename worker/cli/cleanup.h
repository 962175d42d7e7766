// hookqctl cleanup: retention on demand (ops/retention.h), what would go shown first.
#pragma once

#include <cstdint>
#include <optional>

#include "worker/config.h"
#include "worker/store/pg.h"

namespace hookq::ctl {

struct CleanupOptions {
    std::optional<uint64_t> older_than_ms;  // every table; otherwise [retention] of the config
    bool dry_run = false;
    bool json = false;
};

int cleanup(Pg& pg, const Config& cfg, const CleanupOptions& o);

}  // namespace hookq::ctl
