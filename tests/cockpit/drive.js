// Drives a real headless Chromium through Cockpit for tests/cockpit.rs.
// Env: TLP_URL, TLP_USER, TLP_PASS, TLP_PKG, TLP_SHOTS, CHROMIUM.
// Prints "STEP name" lines; exits non-zero on the first failed expectation.
"use strict";
const { chromium } = require("playwright-core");
const fs = require("fs");

const url = process.env.TLP_URL;
const shots = process.env.TLP_SHOTS;
const T = 120000;

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
        await f.locator("#tlp-path").fill(process.env.TLP_PKG);
        await f.locator("#tlp-apply-bootonly").check();
        await f.locator("#tlp-apply").click();
        await f.locator("#tlp-result.tlp-danger").filter({ hasText: "NotAuthorized" }).waitFor();
        console.log("read-only result: " + await f.locator("#tlp-result").textContent());
        await shot("02-read-only-apply-refused");

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

        // Boot-only apply, with progress from the signals.
        await f.locator("#tlp-path").fill(process.env.TLP_PKG);
        await f.locator("#tlp-apply-bootonly").check();
        await f.locator("#tlp-apply").click();
        await f.locator("#tlp-steps li").first().waitFor();
        await shot("05-apply-in-progress");
        await f.locator("#tlp-result.tlp-success").waitFor({ timeout: 600000 });
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
        await shot("06-apply-finished-history");

        // Roll back, boot only, with the confirmation naming the change.
        await f.locator("#tlp-rb-bootonly").check();
        await f.locator("#tlp-rollback").click();
        const confirm = (await f.locator("#tlp-confirm-text").textContent()).trim();
        console.log("confirmation: " + confirm);
        if (!confirm.includes("(snapshot " + def0 + ") instead of snapshot " + def1) || !confirm.includes("boot only"))
            throw new Error("confirmation does not name the change: " + confirm);
        await shot("07-rollback-confirm");
        await f.locator("#tlp-confirm-yes").click();
        await f.locator("#tlp-result.tlp-success").waitFor({ timeout: 600000 });
        await f.locator("#tlp-history tbody tr", { hasText: "rollback" }).first().waitFor();
        await f.locator("#tlp-default").filter({ hasText: new RegExp("^(?!" + def1 + "$)\\d+$") }).waitFor();
        const def2 = (await f.locator("#tlp-default").textContent()).trim();
        console.log(`default snapshot after rollback: ${def2}`);
        await shot("08-rollback-finished");
        console.log("DONE");
    } catch (e) {
        await page.screenshot({ path: `${shots}/99-failure.png`, fullPage: true }).catch(() => {});
        throw e;
    } finally {
        await ctx.close();
        fs.rmSync(profile, { recursive: true, force: true });
    }
}

main().catch((e) => { console.error(e); process.exit(1); });
