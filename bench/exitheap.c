/* exitheap: a program that exits with a large live heap, the case where a
 * leak check at exit has the most memory to read.
 *
 * It builds a linked list of `blocks` blocks of `size` bytes, each filled
 * with a byte value (`fill`: 0 leaves the memory looking untouched, any
 * other value gives words that are no pointers), and exits without freeing
 * them: every block stays reachable from the list's head, a global.  A
 * block holds its index in its first word and the link to the next block
 * at a word that moves with the index (1 + index mod (words - 1)), so that
 * a scan meets pointers at every position of a block; its last word holds
 * a hashed value.  The leak check then reads every word of the heap
 * (blocks * size bytes) and must find every block still reachable.
 */
#include "common.h"

#define USAGE "[blocks=100000] [size=4096] [fill=17]"

static void *exitheap_head; /* a root: every block is still reachable */

static size_t link_word(uint64_t index, size_t words) { return 1 + (size_t)(index % (words - 1)); }

int main(int argc, char **argv)
{
    bench_init("exitheap", USAGE, argc, argv, 3);
    long blocks = bench_arg(argc, argv, 1, 100000, 1, 100000000);
    long size = bench_arg(argc, argv, 2, 4096, 16, 1L << 30);
    long fill = bench_arg(argc, argv, 3, 17, 0, 255);
    size_t words = (size_t)size / sizeof(uint64_t);

    double t0 = bench_now();
    for (long i = 0; i < blocks; i++) {
        uint64_t *p = bench_xmalloc((size_t)size);
        memset(p, (int)fill, (size_t)size);
        p[0] = (uint64_t)i;
        if (link_word((uint64_t)i, words) != words - 1)
            p[words - 1] = (uint64_t)i * 0x9E3779B97F4A7C15ull;
        p[link_word((uint64_t)i, words)] = (uint64_t)(uintptr_t)exitheap_head;
        exitheap_head = p;
    }
    long n = 0;
    for (const uint64_t *p = exitheap_head; p; p = (const uint64_t *)(uintptr_t)p[link_word(p[0], words)], n++)
        if (p[0] != (uint64_t)(blocks - 1 - n))
            bench_fail("block %ld holds index %llu", n, (unsigned long long)p[0]);
    if (n != blocks)
        bench_fail("the list holds %ld blocks, not %ld", n, blocks);
    printf("exitheap blocks=%ld size=%ld fill=%ld time_s=%.3f live_mib=%.1f\n", blocks, size, fill,
           bench_now() - t0, (double)blocks * (double)size / 1048576.0);
    return 0;
}
