#include <coronet/ws_redis/reply.hpp>

namespace coronet::ws_redis {

std::string reply::to_string() const {
    switch (type) {
    case reply_type::status:
        return str;
    case reply_type::error:
        return "(error) " + str;
    case reply_type::integer:
        return "(integer) " + std::to_string(integer);
    case reply_type::string:
        return "\"" + str + "\"";
    case reply_type::nil:
        return "(nil)";
    case reply_type::array: {
        std::string out = "[";
        for (std::size_t i = 0; i < elements.size(); ++i) {
            if (i != 0)
                out += ", ";
            out += elements[i].to_string();
        }
        return out + "]";
    }
    }
    return {};
}

} // namespace coronet::ws_redis
