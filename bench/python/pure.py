# A pure-Python program (no C extension does its work): arithmetic
# expressions generated, tokenized, parsed into trees of objects and
# evaluated, and a word count over the generated text, sorted. Most of its
# allocations are the interpreter's, for Python code. Deterministic checksum.
#   pure.py [expressions=15000]
import sys
import time


class Num:
    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v

    def eval(self):
        return self.v


class Bin:
    __slots__ = ("op", "a", "b")

    def __init__(self, op, a, b):
        self.op, self.a, self.b = op, a, b

    def eval(self):
        a, b = self.a.eval(), self.b.eval()
        if self.op == "+":
            return (a + b) % 1000003
        if self.op == "-":
            return (a - b) % 1000003
        return (a * b) % 1000003


def gen(x, depth):
    x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    if depth == 0 or x % 5 == 0:
        return x, str(x % 1000)
    x, left = gen(x, depth - 1)
    x, right = gen(x, depth - 1)
    return x, "(" + left + " " + "+-*"[x % 3] + " " + right + ")"


def tokens(text):
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c.isdigit():
            j = i
            while j < len(text) and text[j].isdigit():
                j += 1
            out.append(text[i:j])
            i = j
        elif c != " ":
            out.append(c)
            i += 1
        else:
            i += 1
    return out


def parse(toks, k):
    t = toks[k]
    if t == "(":
        a, k = parse(toks, k + 1)
        op = toks[k]
        b, k = parse(toks, k + 1)
        return Bin(op, a, b), k + 1
    return Num(int(t)), k + 1


def main():
    t0 = time.perf_counter()
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != "-" else 15000
    x, acc, words = 99, 0, {}
    for i in range(n):
        x, text = gen(x, 6)
        toks = tokens(text)
        tree, _ = parse(toks, 0)
        acc = (acc * 1000003 + tree.eval()) & 0xFFFFFFFFFFFFFFFF
        for t in toks:
            if t.isdigit():
                words[t] = words.get(t, 0) + 1
    top = sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    for w, c in top:
        acc = (acc * 31 + c + int(w)) & 0xFFFFFFFFFFFFFFFF
    print("pure expressions=%d distinct=%d time_s=%.3f checksum=%016x" % (n, len(words), time.perf_counter() - t0, acc))


main()
