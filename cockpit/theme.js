/* Follow Cockpit's light/dark choice, as Cockpit's own pages do: the shell
 * keeps it in localStorage "shell:style" ("auto", "light" or "dark"; shared by
 * every frame of the origin) and announces a change with a "cockpit-style"
 * event; "auto" follows the browser's prefers-color-scheme. PatternFly 4's
 * dark theme is the pf-theme-dark class on the root element. */
(function () {
    "use strict";

    var media = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

    function apply(style) {
        var s = style || window.localStorage.getItem("shell:style") || "auto";
        var dark = s === "dark" || (s === "auto" && media !== null && media.matches);
        document.documentElement.classList.toggle("pf-theme-dark", dark);
    }

    window.addEventListener("storage", function (ev) {
        if (ev.key === "shell:style")
            apply();
    });
    window.addEventListener("cockpit-style", function (ev) {
        apply(ev.detail && ev.detail.style);
    });
    if (media !== null && media.addEventListener)
        media.addEventListener("change", function () { apply(); });
    apply();
}());
