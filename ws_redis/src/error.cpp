#include <coronet/ws_redis/error.hpp>

#include <string>

namespace coronet::ws_redis {
namespace {

class category final : public std::error_category {
public:
    const char* name() const noexcept override { return "coronet.ws_redis"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
        case errc::bad_url:
            return "not a redis://, rediss:// or unix:// URL";
        case errc::protocol_error:
            return "Redis protocol error (not RESP, or an unexpected reply)";
        case errc::reply_too_large:
            return "Redis reply over the size limit";
        case errc::auth_failed:
            return "Redis AUTH refused";
        case errc::select_failed:
            return "Redis SELECT refused";
        case errc::error_reply:
            return "Redis answered with an error reply";
        case errc::invalid_argument:
            return "invalid argument to a Redis call";
        case errc::queue_overflow:
            return "Redis subscriber queue overflow";
        case errc::closed:
            return "Redis connection closed";
        }
        return "unknown coronet.ws_redis error";
    }
};

} // namespace

const std::error_category& redis_category() noexcept {
    static const category instance;
    return instance;
}

} // namespace coronet::ws_redis
