// A C++ program that leaks one std::string's buffer and keeps a vector: the
// C++ runtime's emergency exception pool (72,704 bytes, allocated by
// libstdc++'s own start-up) must be freed at exit as valgrind frees it, not
// reported as still reachable.
#include <string>
#include <vector>

static std::vector<int> *kept;

int main() {
  kept = new std::vector<int>(100, 1);
  new std::string(200, 'x'); // lost: the string and its buffer
  return 0;
}
