#include <coronet/core/serve_group.hpp>

#include <exception>
#include <stdexcept>
#include <utility>

namespace coronet::core {

result<std::vector<tcp_listener>> listen_group(loop_group& group, const endpoint& ep,
                                               listen_options opts) {
    // Several loops share the port through SO_REUSEPORT; a group of one binds like any listener,
    // so a port already in use is an error rather than silently shared.
    opts.reuse_port = opts.reuse_port || group.size() > 1;
    std::vector<tcp_listener> out;
    out.reserve(group.size());
    endpoint at = ep;
    for (std::size_t i = 0; i < group.size(); ++i) {
        // Only socket(2), bind(2) and listen(2): safe from any thread.
        auto l = tcp_listener::bind(group.at(i), at, opts);
        if (!l)
            return l.error();
        if (i == 0) {
            auto bound = l->local_endpoint();
            if (!bound)
                return bound.error();
            at = *bound; // port 0: the others join the port the first one got
        }
        out.push_back(std::move(*l));
    }
    return out;
}

namespace {

// A listener that accepted is registered with its loop's backend: it is closed there, so that
// the caller may destroy it on any thread afterwards.
task<void> serve_and_close(tcp_listener& listener, connection_handler handler, serve_options opts) {
    std::exception_ptr error;
    try {
        co_await serve(listener, std::move(handler), std::move(opts));
    } catch (...) {
        error = std::current_exception();
    }
    listener.close();
    if (error)
        std::rethrow_exception(error);
}

} // namespace

void serve_group(loop_group& group, std::vector<tcp_listener>& listeners,
                 connection_handler handler, serve_options opts) {
    if (listeners.size() != group.size())
        throw std::invalid_argument("serve_group: one listener per loop");
    group.run([&listeners, &handler, &opts](loop&, std::size_t i) {
        return serve_and_close(listeners[i], handler, opts);
    });
}

} // namespace coronet::core
