// The readable receipt: times in the reader's own zone, and a Print button.
import { $, upgradeTimes } from "./kit.js";

upgradeTimes(document);
$("receipt-print").addEventListener("click", () => window.print());
