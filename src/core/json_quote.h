// `s` as a JSON string literal, quotes included: the quote, the backslash and every control character
// escaped (newline, carriage return, tab, backspace and form feed by name, the rest as \u00XX), so that any
// name or message can go into a JSON document.
#pragma once

#include <string>
#include <string_view>

namespace needle {

std::string json_quote(std::string_view s);

}  // namespace needle
