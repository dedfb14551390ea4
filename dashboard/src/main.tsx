// The dashboard's entry point: renders the App into the page the admin listener serves at `/`.
import { render } from 'preact';
import { App } from './app.js';
import './app.css';

render(<App />, document.getElementById('app')!);
