// Drives a real headless Chromium through Cockpit for tests/cockpit.rs.
// Env: TLP_URL, TLP_USER, TLP_PASS, TLP_PKG (a package path on the host),
// TLP_UPLOAD (a package uploaded from the browser), TLP_KVER (the running
// kernel the daemon sees), TLP_DRIFT_PATCH (live there, not at boot),
// TLP_CVES (comma-separated, named by the uploaded package), TLP_UPDATE_PKG
// (the package the test repository serves), TLP_UPDATE_CVE (the CVE of its
// version 2), TLP_SHOTS, CHROMIUM.
// Prints "STEP name" lines; exits non-zero on the first failed expectation.
// Prints "PUBLISH 2" when the test should publish version 2 of the update
// package, and waits for a line on stdin saying it did.
"use strict";
const { chromium } = require("playwright-core");
const fs = require("fs");

const url = process.env.TLP_URL;
const shots = process.env.TLP_SHOTS;
const T = 120000;

// Lines the test writes to our stdin, one per request.
const stdinLines = [];
let stdinWaiter = null;
require("readline").createInterface({ input: process.stdin }).on("line", (l) => {
    stdinLines.push(l);
    if (stdinWaiter) { stdinWaiter(); stdinWaiter = null; }
});
async function nextStdinLine() {
    while (!stdinLines.length)
        await new Promise((resolve) => { stdinWaiter = resolve; });
    return stdinLines.shift();
}

async function main() {
    fs.mkdirSync(shots, { recursive: true });
    const profile = fs.mkdtempSync("/tmp/tlp-chromium-");
    const ctx = await chromium.launchPersistentContext(profile, {
        executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
        headless: true,
        viewport: { width: 1280, height: 1400 },
        args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    const page = ctx.pages()[0] || await ctx.newPage();
    page.setDefaultTimeout(T);
    const shot = async (name) => {
        await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
        console.log(`STEP ${name}`);
    };
    const frame = () => page.frameLocator('iframe[name$="transactional-livepatch"]');
    const expect = (ok, what) => { if (!ok) throw new Error(what); };
    const textOf = async (f, sel) => ((await f.locator(sel).textContent()) || "").trim();
    const drift = process.env.TLP_DRIFT_PATCH;
    // The end of a transaction: fail at once on an error, not at a timeout.
    const finished = async (f, prefix) => {
        const id = "#" + (prefix || "tlp") + "-result";
        const r = f.locator(`${id}.tlp-success, ${id}.tlp-danger`);
        await r.waitFor({ timeout: 600000 });
        const cls = await r.getAttribute("class");
        expect(cls.includes("tlp-success"), "transaction failed: " + await r.textContent());
    };

    try {
        await page.goto(url + "/");
        await page.fill("#login-user-input", process.env.TLP_USER);
        await page.fill("#login-password-input", process.env.TLP_PASS);
        await page.click("#login-button");
        await page.waitForSelector("#host-apps");
        await shot("01-logged-in");

        // Read-only session: state visible, apply refused with the typed error.
        await page.goto(url + "/transactional-livepatch");
        let f = frame();
        await f.locator("#tlp-default").filter({ hasText: /^\d+$/ }).waitFor();
        await f.locator("#tlp-access").waitFor({ state: "visible" });
        const def0 = (await f.locator("#tlp-default").textContent()).trim();
        console.log(`default snapshot before: ${def0}`);
        // Drift: the running kernel (the stand-in tree) has a livepatch the
        // default snapshot does not boot.
        expect(await textOf(f, "#tlp-kernel") === process.env.TLP_KVER, "running kernel shown: " + await textOf(f, "#tlp-kernel"));
        await f.locator("#tlp-drift.tlp-warn", { hasText: "Drift" }).waitFor();
        const drift0 = await textOf(f, "#tlp-drift-detail");
        console.log("drift before: " + drift0);
        expect(drift0 === "only in the running kernel: " + drift, "drift detail: " + drift0);
        await f.locator(`#tlp-live tbody tr[data-name="${drift}"]`, { hasText: "not in the default snapshot" }).waitFor();
        // Inspecting reads a file with root's rights: refused without administrative access.
        await f.locator("#tlp-path").fill(process.env.TLP_PKG);
        await f.locator("#tlp-apply-bootonly").check();
        await f.locator("#tlp-inspect").click();
        await f.locator("#tlp-result.tlp-danger").filter({ hasText: "NotAuthorized" }).waitFor();
        console.log("read-only result: " + await f.locator("#tlp-result").textContent());
        expect(await f.locator("#tlp-preflight").isHidden(), "facts shown to a read-only session");
        // Checking for updates contacts the repositories: refused too.
        await f.locator("#tlp-check").click();
        await f.locator("#tlp-up-result.tlp-danger").filter({ hasText: "transactionallivepatch.check" }).waitFor();
        console.log("read-only check: " + await f.locator("#tlp-up-result").textContent());
        expect(await f.locator("#tlp-up-found").isHidden(), "updates shown to a read-only session");
        await shot("02-read-only-inspect-refused");

        // Switch to administrative access (sudo).
        await page.locator("#super-user-indicator button, button:has-text('Limited access')").first().click();
        await page.locator("input[type=password]").fill(process.env.TLP_PASS);
        await page.locator("button:has-text('Authenticate')").click();
        await page.locator("#super-user-indicator").filter({ hasText: "Administrative access" }).waitFor();
        await shot("03-administrative-access");

        await page.goto(url + "/transactional-livepatch");
        await page.reload();
        f = frame();
        await f.locator("#tlp-default").filter({ hasText: /^\d+$/ }).waitFor();
        await f.locator("#tlp-access").waitFor({ state: "hidden" });
        await shot("04-page-admin-state");

        // Inspect first: the facts, then the confirmation.
        await f.locator("#tlp-path").fill(process.env.TLP_PKG);
        await f.locator("#tlp-apply-bootonly").check();
        await f.locator("#tlp-inspect").click();
        await f.locator("#tlp-preflight").waitFor({ state: "visible" });
        const facts = {};
        for (const k of ["nevra", "file", "kernel", "modules", "signature", "cves", "replaces"])
            facts[k] = await textOf(f, "#tlp-fact-" + k);
        console.log("inspect facts: " + JSON.stringify(facts));
        expect(facts.nevra === "tlp-livepatch-simple-1-1.x86_64", "nevra");
        expect(facts.file === process.env.TLP_PKG, "file");
        expect(facts.kernel.startsWith(process.env.TLP_KVER + " (the running kernel)"), "kernel");
        expect(facts.modules === "tlp_simple", "modules");
        expect(facts.signature.startsWith("unsigned"), "signature");
        expect(facts.cves === "—", "cves");
        expect(facts.replaces === "nothing (new package)", "replaces");
        const verdict = await textOf(f, "#tlp-verdict");
        console.log("verdict: " + verdict);
        expect(verdict.includes("for the next boot only"), "verdict: " + verdict);
        await shot("05-inspect-facts-confirm");

        // Confirmed: boot-only apply, with progress from the signals.
        await f.locator("#tlp-apply").click();
        await f.locator("#tlp-steps li").first().waitFor();
        await shot("06-apply-in-progress");
        await finished(f);
        const steps = await f.locator("#tlp-steps li").allTextContents();
        console.log("apply steps: " + JSON.stringify(steps));
        if (steps.length < 3) throw new Error("too few steps shown: " + steps);
        if ((await f.locator("#tlp-progress-percent").textContent()).trim() !== "100%")
            throw new Error("progress did not reach 100%");
        await f.locator("#tlp-history tbody tr", { hasText: "tlp-livepatch-simple" }).first().waitFor();
        await f.locator("#tlp-reboot", { hasText: "Reboot pending" }).waitFor();
        const def1 = (await f.locator("#tlp-default").textContent()).trim();
        console.log(`default snapshot after apply: ${def1}`);
        if (def1 === def0) throw new Error("default snapshot did not change");
        await f.locator("#tlp-drift-detail", { hasText: "only at boot: tlp_simple" }).waitFor();
        const drift1 = await textOf(f, "#tlp-drift-detail");
        console.log("drift after apply: " + drift1);
        expect(drift1 === `only in the running kernel: ${drift}; only at boot: tlp_simple`, "drift after apply: " + drift1);
        await shot("07-apply-finished-history-drift");

        // Roll back, boot only, with the confirmation naming the change.
        await f.locator("#tlp-rb-bootonly").check();
        await f.locator("#tlp-rollback").click();
        const confirm = (await f.locator("#tlp-confirm-text").textContent()).trim();
        console.log("confirmation: " + confirm);
        if (!confirm.includes("(snapshot " + def0 + ") instead of snapshot " + def1) || !confirm.includes("boot only"))
            throw new Error("confirmation does not name the change: " + confirm);
        await shot("08-rollback-confirm");
        await f.locator("#tlp-confirm-yes").click();
        await finished(f);
        await f.locator("#tlp-history tbody tr", { hasText: "rollback" }).first().waitFor();
        await f.locator("#tlp-default").filter({ hasText: new RegExp("^(?!" + def1 + "$)\\d+$") }).waitFor();
        const def2 = (await f.locator("#tlp-default").textContent()).trim();
        console.log(`default snapshot after rollback: ${def2}`);
        await f.locator("#tlp-drift-detail", { hasText: new RegExp(`^only in the running kernel: ${drift}$`) }).waitFor();
        await shot("09-rollback-finished");

        // Upload from this computer into the service's spool, inspect, apply.
        await f.locator("#tlp-upload").setInputFiles(process.env.TLP_UPLOAD);
        expect(await f.locator("#tlp-source-upload").isChecked(), "choosing a file selects the upload");
        await f.locator("#tlp-apply-bootonly").check();
        await f.locator("#tlp-inspect").click();
        await f.locator("#tlp-fact-nevra", { hasText: "tlp-livepatch-cve-1-1.x86_64" }).waitFor();
        const ufile = await textOf(f, "#tlp-fact-file");
        const spooled = ufile.replace(/ \(uploaded; removed after the apply\)$/, "");
        expect(spooled !== ufile && /\/spool\/upload-[0-9]+-[0-9a-f]{16}\.rpm$/.test(spooled), "spooled file: " + ufile);
        console.log("uploaded to: " + spooled);
        const ucves = await textOf(f, "#tlp-fact-cves");
        console.log("upload CVEs: " + ucves);
        expect(ucves === process.env.TLP_CVES.split(",").join(", "), "CVEs of the upload: " + ucves);
        expect((await textOf(f, "#tlp-fact-modules")) === "tlp_stack_a", "upload modules");
        await shot("10-upload-inspected-cves");
        await f.locator("#tlp-apply").click();
        await finished(f);
        await f.locator("#tlp-history tbody tr", { hasText: "tlp-livepatch-cve" }).first().waitFor();
        const bootRow = f.locator('#tlp-boot tbody tr[data-name="tlp_stack_a"]');
        await bootRow.waitFor();
        const bootCves = await bootRow.locator(".tlp-cves").textContent();
        console.log("boot row CVEs: " + bootCves);
        expect(bootCves === process.env.TLP_CVES.split(",").join(", "), "CVEs at boot: " + bootCves);
        // The whole page at once (Cockpit's frame is as tall as the window):
        // the picture the README shows.
        await page.setViewportSize({ width: 1280, height: 1800 });
        await f.locator("#tlp-history tbody tr", { hasText: "tlp-livepatch-cve" }).first().scrollIntoViewIfNeeded();
        await shot("11-upload-applied-cves");

        // Updates: the test repository serves version 1 of the update package.
        const upkg = process.env.TLP_UPDATE_PKG;
        const upRow = f.locator(`#tlp-updates tbody tr[data-name="${upkg}"]`);
        const cells = async () => (await upRow.locator("td").allTextContents()).map((c) => c.trim());
        await f.locator("#tlp-check").click();
        await upRow.waitFor();
        let uc = await cells();
        console.log("update row (v1 served): " + JSON.stringify(uc));
        expect(uc[1] === "not installed" && uc[2] === "1-1.x86_64" && uc[3] === "tlp test livepatches", "update row: " + uc);
        const sum1 = await textOf(f, "#tlp-up-summary");
        expect(sum1.startsWith("An update is available for kernel " + process.env.TLP_KVER), "summary: " + sum1);
        await f.locator("#tlp-update").scrollIntoViewIfNeeded();
        await shot("12-update-available");
        // Install it, boot only, with the progress of a transaction.
        await f.locator("#tlp-up-bootonly").check();
        await f.locator("#tlp-update").click();
        await f.locator("#tlp-up-steps li").first().waitFor();
        await finished(f, "tlp-up");
        const usteps = await f.locator("#tlp-up-steps li").allTextContents();
        console.log("update steps: " + JSON.stringify(usteps));
        expect(usteps.some((t) => t.startsWith("Refreshing the repositories")) && usteps.some((t) => t.startsWith("Building the initrd")), "update steps: " + usteps);
        expect((await textOf(f, "#tlp-up-progress-percent")) === "100%", "update progress did not reach 100%");
        const ures = await textOf(f, "#tlp-up-result");
        console.log("update result: " + ures);
        expect(ures.startsWith(`Staged ${upkg}-1-1.x86_64 for the next boot in snapshot `), "update result: " + ures);
        await f.locator("#tlp-history tbody tr", { hasText: upkg + "-1-1" }).first().waitFor();
        expect(await f.locator("#tlp-up-found").isHidden(), "the check from before the update is still shown");
        await shot("13-update-installed");
        // Version 2 published, with its advisory: the page shows the CVE.
        console.log("PUBLISH 2");
        expect((await nextStdinLine()) === "published", "the test did not publish version 2");
        await f.locator("#tlp-check").click();
        await upRow.filter({ hasText: "2-1.x86_64" }).waitFor();
        uc = await cells();
        console.log("update row (v2 served): " + JSON.stringify(uc));
        expect(uc[1] === "1-1" && uc[2] === "2-1.x86_64", "update row: " + uc);
        expect(uc[5] === process.env.TLP_UPDATE_CVE, "update CVEs: " + uc[5]);
        const adv = await upRow.locator(".tlp-advisory").first().textContent();
        console.log("advisory: " + adv);
        expect(adv.includes("TLP-TEST-2026-2") && adv.includes("important") && adv.includes("security"), "advisory: " + adv);
        const sum2 = await textOf(f, "#tlp-up-summary");
        expect(sum2.includes("(fixes " + process.env.TLP_UPDATE_CVE + ")"), "summary: " + sum2);
        await f.locator("#tlp-updates-card").scrollIntoViewIfNeeded();
        await shot("14-update-with-cve");

        // Cockpit's dark theme, switched in the shell's storage, is followed.
        await page.evaluate(() => window.localStorage.setItem("shell:style", "dark"));
        await f.locator("html.pf-theme-dark").waitFor({ state: "attached" });
        await shot("15-dark-theme");
        await page.evaluate(() => window.localStorage.setItem("shell:style", "light"));
        await f.locator("html:not(.pf-theme-dark)").waitFor({ state: "attached" });
        console.log("DONE");
    } catch (e) {
        await page.screenshot({ path: `${shots}/99-failure.png`, fullPage: true }).catch(() => {});
        throw e;
    } finally {
        await ctx.close();
        fs.rmSync(profile, { recursive: true, force: true });
    }
}

// Exit explicitly: the stdin reader would keep node waiting for the test.
main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
