#include <coronet/core/error.hpp>

#include <string>

namespace coronet::core {
namespace {

class category final : public std::error_category {
public:
    const char* name() const noexcept override { return "coronet.core"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
        case errc::operation_canceled:
            return "operation canceled";
        case errc::timed_out:
            return "operation timed out";
        case errc::end_of_stream:
            return "end of stream";
        case errc::limit_exceeded:
            return "size limit exceeded";
        case errc::stream_broken:
            return "stream broken by an interrupted write";
        case errc::not_open:
            return "not open";
        case errc::resolve_failed:
            return "host name resolution failed";
        case errc::invalid_address:
            return "invalid address";
        case errc::over_budget:
            return "memory budget exhausted";
        }
        return "unknown coronet.core error";
    }
    std::error_condition default_error_condition(int ev) const noexcept override {
        switch (static_cast<errc>(ev)) {
        case errc::operation_canceled:
            return std::errc::operation_canceled;
        case errc::timed_out:
            return std::errc::timed_out;
        default:
            return {ev, *this};
        }
    }
};

} // namespace

const std::error_category& core_category() noexcept {
    static const category c;
    return c;
}

} // namespace coronet::core
