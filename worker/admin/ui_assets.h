#pragma once

#include <string_view>
#include <vector>

namespace hookq::admin {

// The dashboard's files (worker/admin/ui/), built into the binary so the package ships one file
// and the page works offline.
struct UiAsset {
    std::string_view path;  // relative to /ui/, e.g. "app.js"
    std::string_view mime;
    std::string_view body;
};

const std::vector<UiAsset>& ui_assets();

}  // namespace hookq::admin
