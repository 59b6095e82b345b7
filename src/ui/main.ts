// Entry point of index.html: the chat page (leader), or a stage tab with ?stage / ?role=stage.
import './style.css';
import { byId } from './dom.ts';
import { ChatApp } from './chat-app.ts';
import { renderJoinPanel } from './join-panel.ts';
import { joinLink, roomParams } from './room.ts';
import { startStageView } from './stage-view.ts';

const url = new URL(location.href);
const room = roomParams(url);
if (room.isStage) {
  startStageView(byId('app', HTMLElement), room.room, room.secret);
} else {
  renderJoinPanel(byId('join', HTMLElement), joinLink(url, room.room, room.secret));
  new ChatApp(room).start();
}
