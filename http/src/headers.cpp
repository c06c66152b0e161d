#include <coronet/http/headers.hpp>

#include <array>

namespace coronet::http {
namespace detail {
namespace {

constexpr std::array<bool, 256> make_tchar() {
    std::array<bool, 256> t{};
    for (int c = '0'; c <= '9'; ++c)
        t[c] = true;
    for (int c = 'a'; c <= 'z'; ++c)
        t[c] = true;
    for (int c = 'A'; c <= 'Z'; ++c)
        t[c] = true;
    for (char c : std::string_view("!#$%&'*+-.^_`|~"))
        t[static_cast<unsigned char>(c)] = true;
    return t;
}
constexpr auto tchar_table = make_tchar();

constexpr unsigned char lower(unsigned char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<unsigned char>(c + 32) : c;
}

} // namespace

bool is_tchar(unsigned char c) noexcept {
    return tchar_table[c];
}

bool is_token(std::string_view s) noexcept {
    if (s.empty())
        return false;
    for (unsigned char c : s)
        if (!tchar_table[c])
            return false;
    return true;
}

bool is_field_value(std::string_view s) noexcept {
    for (unsigned char c : s)
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    return true;
}

std::string_view trim_ows(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

} // namespace detail

bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        auto x = static_cast<unsigned char>(a[i]);
        auto y = static_cast<unsigned char>(b[i]);
        if (x != y && detail::lower(x) != detail::lower(y))
            return false;
    }
    return true;
}

bool list_contains(std::string_view list, std::string_view token) noexcept {
    while (!list.empty()) {
        auto comma = list.find(',');
        std::string_view item = detail::trim_ows(list.substr(0, comma));
        if (iequals(item, token))
            return true;
        if (comma == std::string_view::npos)
            break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

std::string_view header_list::get(std::string_view name, bool* found) const noexcept {
    for (const auto& f : fields_) {
        if (iequals(f.name, name)) {
            if (found != nullptr)
                *found = true;
            return f.value;
        }
    }
    if (found != nullptr)
        *found = false;
    return {};
}

bool header_list::contains(std::string_view name) const noexcept {
    bool found = false;
    (void)get(name, &found);
    return found;
}

std::size_t header_list::count(std::string_view name) const noexcept {
    std::size_t n = 0;
    for (const auto& f : fields_)
        if (iequals(f.name, name))
            ++n;
    return n;
}

} // namespace coronet::http
