/** The dashboard page's entry: connect to the hub, render the app. */
import { render } from "preact";
import { App } from "./App";
import { live } from "./live";
import "./style.css";

live.connect();
render(<App />, document.getElementById("app")!);
