// Fields picked out of a JSON body by JSON Pointer (RFC 6901), for keys built from the payload
// (the edge's hookq_json_var): one pass, no document built, stopping once every field is found.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hookq {

class JsonPointer {
  public:
    // "/events/0/meta/href"; "~1" is "/" and "~0" is "~" inside a token. nullopt, with the reason
    // in `error`, for anything else (it must start with "/", and "~" must escape 0 or 1).
    static std::optional<JsonPointer> parse(std::string_view text, std::string& error);

    const std::vector<std::string>& tokens() const { return tokens_; }
    // Does this token select element `index` of an array? ("0", "12"; not "01", "-", "+1")
    static bool is_index(std::string_view token, size_t index);

  private:
    std::vector<std::string> tokens_;
};

// out[i] = the value at pointers[i]: a string's text (unescaped), a number as it is written
// (integers re-printed, so "-0" reads "0"), "true" or "false". nullopt for null, an object, an
// array, nothing at that place, or a place after the first syntax error. The rest of the body is
// not read once every pointer has its value, so trailing garbage goes unnoticed then: the values
// still come from well-formed JSON. `out` must have pointers.size() elements.
void extract_json_fields(std::string_view json, std::span<const JsonPointer> pointers,
                         std::span<std::optional<std::string>> out);

}  // namespace hookq
