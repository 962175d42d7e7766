// libFuzzer target: hookq_json_var reads fields out of request bodies before anything else has
// looked at them. Any bytes must parse without a crash, unbounded recursion or a leak, and a
// field found must be one the pointers point at.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shared/json_fields.h"

namespace {

const std::vector<hookq::JsonPointer>& pointers() {
    static const std::vector<hookq::JsonPointer> ps = [] {
        std::vector<hookq::JsonPointer> out;
        std::string error;
        for (std::string_view p :
             {"/a", "/events/0/action", "/events/1/meta/href", "/0", "/a~1b", "/", "/x/0/0/y"}) {
            out.push_back(*hookq::JsonPointer::parse(p, error));
        }
        return out;
    }();
    return ps;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    std::vector<std::optional<std::string>> out(pointers().size());
    hookq::extract_json_fields(input, pointers(), out);
    for (const auto& v : out) {
        // A value is a scalar's text: never longer than the input that held it.
        if (v && v->size() > size) {
            std::abort();
        }
    }
    // And the pointer parser on the same bytes.
    std::string error;
    auto p = hookq::JsonPointer::parse(input, error);
    if (!p && error.empty()) {
        std::abort();
    }
    return 0;
}
