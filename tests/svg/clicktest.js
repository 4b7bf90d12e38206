/* Drives a flame graph as a user would: a hover, a click on a frame, the
 * reset control, a second click then Escape, and a search. The outcome goes
 * into the root element's data-test attribute, which Chromium's --dump-dom
 * prints; svgcheck.py dom judges it. SMTEST names the frames to use. */
(function () {
  var doc = document, svg = doc.documentElement, res = [];
  function put(k, v) { res.push(k + '=' + v); }
  try {
    var api = window.smflame;
    var widest = function (name) {
      var best = null;
      api.frames.forEach(function (f) { if (f.name === name && (!best || f.v > best.v)) best = f; });
      if (!best) throw new Error('no frame ' + name);
      return best;
    };
    var shown = function (f) { return f.g.classList.contains('hide') ? 'hidden' : 'shown'; };
    var mouse = function (el, type) {
      el.dispatchEvent(new MouseEvent(type, {bubbles: true, cancelable: true, view: window}));
    };
    var t = widest(SMTEST.target), child = widest(SMTEST.child), other = widest(SMTEST.other);
    var below = widest('all'), reset = doc.getElementById('reset');
    put('target', t.name);
    mouse(t.rect, 'mouseover');
    put('detail', doc.getElementById('detail').textContent);
    mouse(t.rect, 'click');
    put('zoomed', svg.getAttribute('data-zoom'));
    put('width', t.rect.getAttribute('width'));
    put('other', shown(other));
    put('child', shown(child));
    put('below', below.g.getAttribute('class').indexOf('anc') >= 0 ? 'anc' : 'plain');
    put('belowwidth', below.rect.getAttribute('width'));
    put('reset', reset.classList.contains('hide') ? 'hidden' : 'shown');
    mouse(reset, 'click');
    put('after', t.rect.getAttribute('width') + ',' + shown(other) + ',' +
        (reset.classList.contains('hide') ? 'hidden' : 'shown'));
    mouse(child.rect, 'click');
    doc.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape', bubbles: true}));
    put('escape', t.rect.getAttribute('width') + ',' + shown(other));
    put('searched', SMTEST.search);
    put('matched', api.search(SMTEST.search));
    put('matchtext', doc.getElementById('matched').textContent);
    put('hilite', api.frames.filter(function (f) { return f.rect.getAttribute('fill') !== f.fill; }).length);
  } catch (e) {
    put('error', e);
  }
  svg.setAttribute('data-test', res.join(';'));
})();
