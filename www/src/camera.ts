// The lab's camera: its button opens a preview; pressed again, it takes the snapshot (a JPEG
// of the video frame) and closes the preview.

import { el, errorMessage, errorParagraph } from "./dom";

export class Camera {
  private stream: MediaStream | null = null;

  /** `button` toggles the preview shown in `preview`; `onSnapshot` gets each snapshot. */
  constructor(
    private readonly button: HTMLButtonElement,
    private readonly preview: HTMLElement,
    private readonly onSnapshot: (blob: Blob, name: string) => void,
  ) {
    button.addEventListener("click", () => void this.toggle());
  }

  /** Opens the camera preview, or takes the snapshot and closes it. */
  private async toggle(): Promise<void> {
    if (this.stream) {
      const video = this.preview.querySelector("video");
      if (video && video.videoWidth > 0) {
        const canvas = el("canvas", { width: video.videoWidth, height: video.videoHeight });
        canvas.getContext("2d")?.drawImage(video, 0, 0);
        const blob = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
        if (blob) this.onSnapshot(blob, `camera snapshot ${new Date().toLocaleTimeString()}`);
      }
      this.stop();
      return;
    }
    try {
      if (!navigator.mediaDevices?.getUserMedia) throw new Error("this browser gives no camera access to pages");
      this.stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
    } catch (error) {
      this.preview.replaceChildren(errorParagraph(`No camera: ${errorMessage(error)}`));
      this.preview.hidden = false;
      return;
    }
    const video = el("video", { autoplay: true, playsinline: true, muted: true, "aria-label": "Camera preview" });
    video.srcObject = this.stream;
    this.preview.replaceChildren(video);
    this.preview.hidden = false;
    this.button.textContent = "Take the snapshot";
  }

  /** Closes the preview and releases the camera. */
  stop(): void {
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.stream = null;
    this.preview.hidden = true;
    this.preview.replaceChildren();
    this.button.textContent = "Camera";
  }
}
