#!/usr/bin/env python3
"""Checks of the pictures `snapmalloc flame` and `snapmalloc timeline` draw.

  svgcheck.py flame SVG TOP_JSON [--diff] [--name NAME]... [--field F]
      well-formed XML; the bottom frame's bytes are the sum of the report's
      sizes (its member F: peak_size for a picture of the peak); every site of the report (`top`/`diff --format json --limit 0`)
      is drawn with its function, file:line and bytes; with --diff, sites
      that grew are red and sites that shrank are blue.
  svgcheck.py timeline SVG TOP_JSON SNAP...
      well-formed XML; one point per snapshot per line, in time order, with
      the header values of the snapshots; the stacked sites are the report's
      first sites.
  svgcheck.py png PNG [--red N] [--blue N]
      the screenshot is not blank: enough pixels differ from the background
      and enough distinct colours appear (and enough red or blue ones).
  svgcheck.py dom DUMP SVG
      the result of the click test (see render.sh) in Chromium's dumped DOM.

Exits 1 with one line per problem; standard library only.
"""
import html
import json
import re
import struct
import sys
import xml.etree.ElementTree as ET
import zlib

NS = '{http://www.w3.org/2000/svg}'
problems = []


def fail(msg):
    problems.append(msg)


def done():
    for p in problems:
        print('FAIL: ' + p)
    sys.exit(1 if problems else 0)


def frames(root):
    """(title lines, data-v, fill, g) of every flame frame, in document order."""
    out = []
    for g in root.iter(NS + 'g'):
        if g.get('class') != 'f':
            continue
        title = g.find(NS + 'title').text.split('\n')
        rect = g.find(NS + 'rect')
        out.append((title, int(g.get('data-v')), rect.get('fill'), g))
    return out


def rgb(fill):
    return tuple(int(fill[i:i + 2], 16) for i in (1, 3, 5))


def hue(fill):
    r, g, b = rgb(fill)
    if r > b + 15 and r > g:
        return 'red'
    if b > r + 15:
        return 'blue'
    return 'neutral'


def check_flame(args):
    svg, report = args[0], args[1]
    diff = '--diff' in args
    names = [args[i + 1] for i, a in enumerate(args) if a == '--name']
    # the report's member that the widths are (peak_size for flame --at peak)
    field = args[args.index('--field') + 1] if '--field' in args else 'size'
    try:
        root = ET.parse(svg).getroot()
    except ET.ParseError as e:
        fail('%s is not well-formed XML: %s' % (svg, e))
        return
    if root.tag != NS + 'svg':
        fail('root element is %s, not svg' % root.tag)
    stats = json.load(open(report))['stats']
    fr = frames(root)
    if not fr:
        fail('no frames')
        return
    bottom = [f for f in fr if f[3].get('data-d') == '0']
    total = sum(s[field] for s in stats)
    if len(bottom) != 1 or bottom[0][1] != total:
        fail('bottom frame holds %s bytes, the report %d' % ([b[1] for b in bottom], total))
    if '(%d bytes,' % total not in '\n'.join(bottom[0][0]) if bottom else True:
        fail('the bottom frame title does not give the total %d bytes' % total)
    head = root.find(".//*[@id='head']")
    if head is None or int(head.get('data-total', -1)) != total:
        fail('head data-total is not %d' % total)
    texts = ''.join(''.join(t.itertext()) for t in root.iter(NS + 'text'))
    for n in names:
        if not any(f[0][0] == n for f in fr):
            fail('no frame titled %r' % n)
        if n not in texts:
            fail('no label shows %r' % n)
    # Self bytes of a frame: its own minus its children's (a child sits one
    # row up, inside its byte range). A site's frames' self bytes add up to
    # the report's size for that file:line, give or take frames too narrow
    # to draw (under 0.1 px each; allow a pixel's worth of bytes).
    gw = float(root.get('data-gw'))
    tol = total / gw
    rows = {}
    for f in fr:
        rows.setdefault(int(f[3].get('data-d')), []).append(f)

    def self_bytes(f):
        d, x, v = int(f[3].get('data-d')), int(f[3].get('data-x')), f[1]
        kids = [k for k in rows.get(d + 1, []) if x <= int(k[3].get('data-x')) < x + v]
        return v - sum(k[1] for k in kids)
    for s in stats:
        site = s['site']
        if s[field] <= 0 or site['file'] is None:
            continue
        where = '%s:%d' % (site['file'], site['line'])
        match = [f for f in fr if len(f[0]) > 1 and f[0][1] == where]
        drawn = sum(self_bytes(f) for f in match)
        if abs(drawn - s[field]) > tol:
            fail('%s %s: %d bytes drawn, %d in the report' % (site['function'], where, drawn, s[field]))
        for title, v, fill, g in match:
            info = '\n'.join(title)
            if 'count=' not in info or '% of all' not in info or 'size=' not in info:
                fail('%s %s: title lacks size, share or count: %r' % (site['function'], where, info))
    if diff:
        # each frame's colour follows its own change, as its title gives it
        for title, v, fill, g in fr:
            m = re.search(r'\((-?[0-9]+) bytes, (-?[0-9]+) before\)', title[-1])
            if not m:
                fail('diff frame title without bytes before and after: %r' % title)
                continue
            now, before = int(m.group(1)), int(m.group(2))
            want = 'red' if now > before else 'blue' if now < before else 'neutral'
            if now != v or hue(fill) != want:
                fail('%s changed from %d to %d bytes (drawn %d) but is %s (%s)' % (title[0], before, now, v,
                                                                                 hue(fill), fill))
        for colour in ('red', 'blue'):
            for n in [args[i + 1] for i, a in enumerate(args) if a == '--' + colour]:
                if not any(f[0][0] == n and hue(f[2]) == colour for f in fr):
                    fail('%s is not drawn %s' % (n, colour))
        seen = {hue(f[2]) for f in fr}
        if 'red' not in seen or 'blue' not in seen:
            fail('the diff flame graph lacks red or blue frames: %s' % seen)


def snap_info(path):
    """(pid, time, traced, rss, mapped, in use) from a snapshot's INFO section."""
    d = open(path, 'rb').read()
    tag, count, nbytes = struct.unpack_from('<IIQ', d, 32)
    assert tag == 1, tag
    pid, t, traced, peak, rss, mapped, inuse = struct.unpack_from('<7Q', d, 48)
    return {'pid': pid, 'time': t, 'traced': traced, 'rss': rss, 'mapped': mapped, 'inuse': inuse}


def check_timeline(args):
    svg, report, snaps = args[0], args[1], args[2:]
    try:
        root = ET.parse(svg).getroot()
    except ET.ParseError as e:
        fail('%s is not well-formed XML: %s' % (svg, e))
        return
    infos = sorted((snap_info(p) for p in snaps), key=lambda i: i['time'])
    series = {g.get('data-series'): g for g in root.iter(NS + 'g') if g.get('class') == 'series'}
    if sorted(series) != ['inuse', 'mapped', 'rss', 'traced']:
        fail('series are %s' % sorted(series))
    for name, g in series.items():
        pts = list(g.iter(NS + 'circle'))
        if len(pts) != len(infos):
            fail('%s: %d points for %d snapshots' % (name, len(pts), len(infos)))
            continue
        ts = [float(p.get('data-t')) for p in pts]
        if ts != sorted(ts) or ts[0] != 0:
            fail('%s: times not in order from 0: %s' % (name, ts))
        want = [(i['time'] - infos[0]['time']) / 1e9 for i in infos]
        if any(abs(a - b) > 0.002 for a, b in zip(ts, want)):
            fail('%s: times %s, snapshots at %s' % (name, ts, want))
        xs = [float(p.get('cx')) for p in pts]
        if xs != sorted(xs):
            fail('%s: x not increasing: %s' % (name, xs))
        vals = [int(p.get('data-v')) for p in pts]
        if vals != [i[name] for i in infos]:
            fail('%s: values %s, headers say %s' % (name, vals, [i[name] for i in infos]))
        if len(pts) > 1 and g.find(NS + 'polyline') is None:
            fail('%s: no line' % name)
    # a y tick label with a unit, an x tick label in seconds
    ticks = [''.join(t.itertext()) for t in root.iter(NS + 'text') if t.get('class') in ('ytick', 'xtick')]
    if not any(re.fullmatch(r'[0-9.]+ (B|KiB|MiB|GiB)', t) for t in ticks):
        fail('no y tick with a unit: %s' % ticks)
    if not any(re.fullmatch(r'[0-9.]+ s', t) for t in ticks):
        fail('no x tick in seconds: %s' % ticks)
    stats = json.load(open(report))['stats']
    want = ['%s:%d' % (s['site']['file'], s['site']['line']) for s in stats if s['size'] > 0][:5]
    got = [g.get('data-site') for g in root.iter(NS + 'g') if g.get('class') == 'area']
    if got != want:
        fail('stacked sites %s, top of the last snapshot %s' % (got, want))
    legend = [''.join(t.itertext()) for t in root.iter(NS + 'text') if t.get('class') == 'site']
    for w in want:
        if not any(l.startswith(w) for l in legend):
            fail('legend lacks %s: %s' % (w, legend))


def read_png(path):
    """(width, height, rows of (r, g, b) tuples) of an 8-bit RGB or RGBA PNG."""
    d = open(path, 'rb').read()
    if d[:8] != b'\x89PNG\r\n\x1a\n':
        raise ValueError('not a PNG')
    pos, idat, hdr = 8, b'', None
    while pos < len(d):
        n, kind = struct.unpack_from('>I4s', d, pos)
        body = d[pos + 8:pos + 8 + n]
        if kind == b'IHDR':
            hdr = struct.unpack('>IIBBBBB', body)
        elif kind == b'IDAT':
            idat += body
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = hdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError('unsupported PNG (depth %d, colour type %d, interlace %d)' % (depth, ctype, interlace))
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[i:i + 3]) for i in range(0, stride, bpp)])
        prev = line
    return w, h, rows


def check_png(args):
    path = args[0]
    red = int(args[args.index('--red') + 1]) if '--red' in args else 0
    blue = int(args[args.index('--blue') + 1]) if '--blue' in args else 0
    try:
        w, h, rows = read_png(path)
    except (ValueError, OSError, zlib.error, TypeError) as e:
        fail('%s: %s' % (path, e))
        return
    counts = {}
    for row in rows:
        for p in row:
            counts[p] = counts.get(p, 0) + 1
    bg, nbg = max(counts.items(), key=lambda kv: kv[1])
    ink = w * h - nbg
    if ink < w * h * 0.03:
        fail('%s: only %d of %d pixels differ from the background %s' % (path, ink, w * h, bg))
    if len(counts) < 30:
        fail('%s: only %d distinct colours' % (path, len(counts)))
    reds = sum(c for (r, g, b), c in counts.items() if r > 170 and r > g + 60 and r > b + 60)
    blues = sum(c for (r, g, b), c in counts.items() if b > 150 and b > r + 60)
    if reds < red:
        fail('%s: %d red pixels, expected at least %d' % (path, reds, red))
    if blues < blue:
        fail('%s: %d blue pixels, expected at least %d' % (path, blues, blue))
    print('%s: %dx%d, %d colours, %d%% ink, %d red, %d blue' % (path, w, h, len(counts), 100 * ink // (w * h),
                                                                reds, blues))


def check_dom(args):
    dump, svg = args[0], args[1]
    text = open(dump, encoding='utf-8', errors='replace').read()
    m = re.search(r'data-test="([^"]*)"', text)
    if not m:
        fail('the test script left no result in the DOM (did the page script fail?)')
        return
    res = dict(kv.split('=', 1) for kv in html.unescape(m.group(1)).split(';'))
    root = ET.parse(svg).getroot()
    gw = float(root.get('data-gw'))
    fr = frames(root)
    target = [f for f in fr if f[0][0] == res.get('target')]
    if not target:
        fail('click target %r not found' % res.get('target'))
        return
    # the widest frame of that name, as clicktest.js picks it
    orig = max(target, key=lambda f: f[1])[3].find(NS + 'rect').get('width')
    expect = {
        'zoomed': res.get('target'),              # the picture says what it zoomed to
        'width': '%.2f' % gw,                      # the clicked frame fills the width
        'other': 'hidden',                         # a frame outside it is hidden
        'below': 'anc',                            # the bottom frame is dimmed, full width
        'belowwidth': '%.2f' % gw,
        'child': 'shown',                          # a frame above it stays
        'reset': 'shown',                          # the reset control appears
        'after': '%s,shown,hidden' % orig,         # Reset zoom restores everything
        'escape': '%s,shown' % orig,               # so does Escape
    }
    for k, v in expect.items():
        if res.get(k) != v:
            fail('after the click, %s is %r, expected %r (all: %s)' % (k, res.get(k), v, res))
    hits = [f for f in fr if f[0][0] == res.get('searched')]
    want = sum(f[1] for f in hits)
    if res.get('matched') != str(want) or 'Matched' not in res.get('matchtext', ''):
        fail('search for %r matched %r bytes (%r), expected %d' % (res.get('searched'), res.get('matched'),
                                                                   res.get('matchtext'), want))
    if res.get('hilite') != str(len(hits)):
        fail('search highlighted %r frames, expected %d' % (res.get('hilite'), len(hits)))
    if not res.get('detail', '').startswith(res.get('target') + '  |  '):
        fail('hovering did not show the frame in the detail line: %r' % res.get('detail'))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {'flame': check_flame, 'timeline': check_timeline, 'png': check_png, 'dom': check_dom}[cmd](args)
    done()


if __name__ == '__main__':
    main()
