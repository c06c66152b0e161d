#include <coronet/core/loop.hpp>

int main() {
    coronet::core::loop lp;
    return 0;
}
