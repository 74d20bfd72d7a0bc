// MathJax 3 settings for pymdownx.arithmatex (generic mode): typeset only the .arithmatex spans.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};

// Material's instant navigation swaps pages without reloading: typeset each new page. The first page is
// typeset by MathJax's own startup; clearing the output cache then would drop the glyph styles it made.
let firstPage = true;
if (typeof document$ !== "undefined") {
  document$.subscribe(() => {
    if (firstPage) {
      firstPage = false;
      return;
    }
    if (window.MathJax && MathJax.typesetPromise) {
      MathJax.typesetClear();
      MathJax.texReset();
      MathJax.typesetPromise();
    }
  });
}
