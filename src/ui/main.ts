// Entry point of index.html: the chat page (leader), or a stage tab with ?stage / ?role=stage.
import './style.css';
import { byId } from './dom.ts';
import { ChatApp } from './chat-app.ts';
import { joinLink, renderJoinPanel, roomFromUrl } from './join-panel.ts';
import { startStageView } from './stage-view.ts';

const url = new URL(location.href);
const room = roomFromUrl(url);
if (url.searchParams.has('stage') || url.searchParams.get('role') === 'stage') {
  startStageView(byId('app', HTMLElement), room);
} else {
  renderJoinPanel(byId('join', HTMLElement), joinLink(url, room), false);
  new ChatApp().start();
}
