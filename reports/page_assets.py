"""The report page's style and scripts: its CSS, the leaderboards' sort on a click, and the parallel coordinates drawn
while on screen (reports/page.py puts them in the page)."""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2rem; margin-top: 2rem; }
.note { background: #fff4e5; border-left: 4px solid #ff9800; padding: 0.4rem 0.8rem; margin: 0.4rem 0; }
table.leaderboard { border-collapse: separate; border-spacing: 0; border-top: 1px solid #ddd; border-left: 1px solid #ddd; font-size: 0.85rem; margin: 0.5rem 0; }
table.leaderboard th, table.leaderboard td { border: 1px solid #ddd; border-width: 0 1px 1px 0; padding: 0.2rem 0.45rem; text-align: right; }
table.leaderboard th { background: #f3f3f3; cursor: pointer; position: sticky; top: 0; }
table.leaderboard td.text, table.leaderboard th.text { text-align: left; }
table.leaderboard[id] td:nth-child(-n+2), table.leaderboard[id] th:nth-child(-n+2) { position: sticky; background: #fff; z-index: 1; }
table.leaderboard[id] th:nth-child(-n+2) { background: #f3f3f3; z-index: 2; }
table.leaderboard[id] td:first-child, table.leaderboard[id] th:first-child { left: 0; min-width: 3.4rem; max-width: 3.4rem; box-sizing: border-box; }
table.leaderboard[id] td:nth-child(2), table.leaderboard[id] th:nth-child(2) { left: 3.4rem; }
table.leaderboard[id] td:last-child:not(:empty) { min-width: 22rem; }
tr.status-failed { color: #b71c1c; } tr.status-stopped, tr.status-cut { color: #8a4b00; } tr.status-running { color: #666; }
.scroll { max-height: 32rem; max-width: 100%; overflow: auto; }
.gallery { display: grid; grid-template-columns: repeat(6, minmax(0, 240px)); gap: 4px; align-items: start; }
.gallery figure { margin: 0; font-size: 0.75rem; text-align: center; min-width: 0; }
.gallery img { width: 100%; max-width: 240px; height: auto; image-rendering: pixelated; }
.colour-legend span.class { white-space: nowrap; } .colour-legend span.swatch { display: inline-block; width: 0.9em; height: 0.9em; border: 1px solid #999; margin: 0 0.25em 0 0.7em; vertical-align: -0.1em; }
"""

SORT_SCRIPT = """
document.querySelectorAll('table.leaderboard').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, column) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var ascending = th.dataset.order !== 'asc';
      th.dataset.order = ascending ? 'asc' : 'desc';
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.value, y = b.cells[column].dataset.value;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return ascending ? c : -c;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


# Parallel coordinates are drawn with WebGL, three contexts each, and a browser keeps 16 at most: a report of several
# studies lost the oldest figures' ("Too many active WebGL contexts"), drawn as empty axes. Each is drawn as it comes
# near the screen and undrawn, its contexts given back, as it leaves (a printout shows GL_WAIT for those off screen).
GL_WAIT = "Parallel coordinates: drawn when on screen (a WebGL figure; a browser keeps few at once)"
GL_SCRIPT = """
(function () {
  function undraw(div) {
    var canvases = div.querySelectorAll('canvas');
    Plotly.purge(div);
    canvases.forEach(function (canvas) {  // its contexts given back now, not when the page's garbage is collected
      var gl = canvas.getContext('webgl') || canvas.getContext('experimental-webgl');
      var lose = gl && gl.getExtension('WEBGL_lose_context');
      if (lose) { lose.loseContext(); }
    });
    delete div.dataset.drawn;
    div.textContent = div.dataset.wait;  // what it says while not drawn
  }
  var seen = new IntersectionObserver(function (entries) {
    entries.forEach(function (entry) {
      var div = entry.target;
      if (entry.isIntersecting && !div.dataset.drawn) {
        var spec = JSON.parse(document.getElementById(div.id + '-spec').textContent);
        div.dataset.wait = div.dataset.wait || div.textContent;
        div.textContent = '';
        Plotly.newPlot(div, spec.data, spec.layout, {displaylogo: false, responsive: true});
        div.dataset.drawn = '1';
      } else if (!entry.isIntersecting && div.dataset.drawn) {
        undraw(div);
      }
    });
  }, {rootMargin: '300px 0px'});
  document.querySelectorAll('div.gl-figure').forEach(function (div) { seen.observe(div); });
})();
"""
