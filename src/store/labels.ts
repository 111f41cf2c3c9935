/** Whether `labels` match an equality selector such as `app=tide,role=worker` (empty matches all). */
export function matchesSelector(
  labels: Readonly<Record<string, string>> | undefined,
  selector: string | undefined,
): boolean {
  if (selector === undefined || selector.trim() === '') return true;
  return selector.split(',').every((term) => {
    const [key, value] = term.split('=').map((part) => part.trim());
    if (key === undefined || key === '') return true;
    return labels?.[key] === value;
  });
}
