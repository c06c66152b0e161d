#include <coronet/http/error.hpp>

#include <string>

namespace coronet::http {
namespace {

class category final : public std::error_category {
public:
    const char* name() const noexcept override { return "coronet.http"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
        case errc::bad_request:
            return "malformed request";
        case errc::bad_header:
            return "malformed header field";
        case errc::missing_host:
            return "missing or repeated Host header";
        case errc::bad_content_length:
            return "invalid or conflicting Content-Length";
        case errc::content_length_with_transfer_encoding:
            return "Content-Length together with Transfer-Encoding";
        case errc::bad_transfer_encoding:
            return "invalid Transfer-Encoding";
        case errc::bad_chunk:
            return "malformed chunked body";
        case errc::uri_too_long:
            return "request line too long";
        case errc::header_too_large:
            return "header section too large";
        case errc::body_too_large:
            return "body too large";
        case errc::too_many_chunks:
            return "too many chunks";
        case errc::unsupported_transfer_coding:
            return "unsupported transfer coding";
        case errc::version_not_supported:
            return "HTTP version not supported";
        case errc::expectation_failed:
            return "unsupported expectation";
        case errc::bad_status_line:
            return "malformed status line";
        case errc::unexpected_eof:
            return "stream ended inside a message";
        }
        return "unknown coronet.http error";
    }
};

} // namespace

const std::error_category& http_category() noexcept {
    static const category c;
    return c;
}

int status_of(const std::error_code& ec) noexcept {
    if (ec.category() != http_category())
        return 400;
    switch (static_cast<errc>(ec.value())) {
    case errc::uri_too_long:
        return 414;
    case errc::header_too_large:
        return 431;
    case errc::body_too_large:
    case errc::too_many_chunks:
        return 413;
    case errc::unsupported_transfer_coding:
        return 501;
    case errc::version_not_supported:
        return 505;
    case errc::expectation_failed:
        return 417;
    default:
        return 400;
    }
}

} // namespace coronet::http
